"""A session that a fatal audio error ends: its own events arrive first and in seq order, on every hub wire.

A client that sends undecodable audio and then `stop` raced the hub's end of the session: the `stop` is
answered by nothing (the session has ended, which is what it asks for), and no answer to the client's
commands overtakes the session's events (it used to: "session '…' has ended", seq 0, came before the
`invalid_audio` error that ended the session, and once before `session.started`).
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.contract.clients import SESSION_STREAM, transports
from tests.contract.conftest import MakeClient
from tests.contract.test_conformance import check_session_stream

HUB_WIRES = transports(SESSION_STREAM)
# Wires whose `start` is a message on one ordered request stream: audio and stop can follow it before
# its answer, so the session's end can come before `session.started` has gone out.
PIPELINED = {"websocket", "grpc"}
NOT_WAV = bytes(3200)  # 3200 zero bytes: no RIFF header
CASES = [(t, False) for t in HUB_WIRES] + [(t, True) for t in HUB_WIRES if t in PIPELINED]


def brief(events: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return [(e["type"], e["seq"], e.get("message", "")) for e in events]


@pytest.mark.parametrize(("transport", "pipelined"), CASES,
                         ids=[f"{t}-{'pipelined' if p else 'answered'}" for t, p in CASES])
async def test_stop_after_a_fatal_audio_error_overtakes_nothing(make_client: MakeClient, transport: str,
                                                                pipelined: bool) -> None:
    c = await make_client(transport)
    body = {"audio": {"encoding": "wav"}}
    if pipelined:
        await c.start_again(body)  # no wait for session.started
    else:
        assert await c.start(body), c.events
    await c.send_audio(NOT_WAV)
    await c.stop()
    events = await c.wait_ended(30)
    received = c.events[: c.events.index(events[-1]) + 1]  # everything the connection got, to session.ended
    assert received == events, brief(received)
    check_session_stream(events, c.session_id or "")
    assert [e["type"] for e in events] == ["session.started", "error", "session.ended"], brief(events)
    assert events[1]["code"] == "invalid_audio" and events[1]["fatal"] is True, events[1]
    assert "WAV" in events[1]["message"], events[1]
    assert events[-1]["reason"] == "error", events[-1]
    # the stop was not refused either (SSE: an HTTP answer; the other wires: an error event)
    told = [c.errors.get_nowait() for _ in range(c.errors.qsize())]
    assert {e["code"] for e in told} == {"invalid_audio"}, told


@pytest.mark.parametrize("transport", HUB_WIRES)
async def test_audio_refused_after_a_fatal_error_overtakes_nothing(make_client: MakeClient, transport: str) -> None:
    """More audio behind the undecodable audio is refused ("has ended", once), but never between the
    session's events: after `session.ended` (the WebSocket and gRPC then end the connection, so a refusal
    not yet due by then is not sent at all; SSE answers the audio request itself)."""
    c = await make_client(transport)
    assert await c.start({"audio": {"encoding": "wav"}}), c.events
    await c.send_audio(NOT_WAV)
    await c.send_audio(NOT_WAV)
    events = await c.wait_ended(30)
    received = c.events[: c.events.index(events[-1]) + 1]
    assert received == events, brief(received)
    assert [e["type"] for e in events] == ["session.started", "error", "session.ended"], brief(events)
    assert events[1]["code"] == "invalid_audio" and events[1]["fatal"] is True, events[1]
