"""Issue 19: the turn fields travel on every streaming transport (WebSocket, HTTP+SSE, Socket.IO, gRPC).

`StartSession.turn` is taken on each; in semantic mode `speech.ended` carries `reason` and
`turn_probability` and `transcript.final` carries `end_of_turn`; in silence mode `speech.ended` says
`reason: silence` and the semantic fields are absent; a bad `turn` is the same typed error everywhere."""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
import pytest

from tests.contract.clients import CLIENTS, PCM16, Client
from tests.contract.conftest import MakeClient
from tests.support import HubProcess, clip, load_pcm16

TRANSPORTS = list(CLIENTS)
REASONS = {"silence", "turn", "max_silence", "max_length", "flush"}


def _sentence() -> bytes:
    """LJ001-0005 (a whole sentence) and 1.5 s of silence: the turn model calls it finished (P 0.98)."""
    pcm = load_pcm16(clip("en_ljspeech_LJ001-0005").path)
    return np.concatenate([pcm, np.zeros(24000, dtype=np.int16)]).tobytes()


async def _session(c: Client, start: dict[str, Any]) -> list[dict[str, Any]]:
    sid = await c.start({"audio": PCM16, **start})
    assert sid, f"{c.name}: start refused: {c.events[-1:]}"
    await c.stream(_sentence(), chunk_bytes=3200, realtime=4.0)
    # the end of the sentence (8.1 s) before `stop`, which would end it at once (reason flush)
    await c.wait_for(lambda e: e.get("type") == "speech.ended" and e["offset_ms"] > 7500)
    await c.stop()
    return await c.wait_ended(120)


@pytest.fixture(scope="module")
async def runs(hub: HubProcess) -> dict[tuple[str, str], list[dict[str, Any]]]:
    """(transport, mode) -> the session's events; every transport and both modes at once."""
    async def one(name: str, mode: str) -> tuple[tuple[str, str], list[dict[str, Any]]]:
        c = CLIENTS[name](hub)
        await c.connect()
        try:
            return (name, mode), await _session(c, {"turn": {"mode": mode, "eagerness": "low"}}
                                                if mode == "semantic" else {})
        finally:
            await c.close()

    pairs = [(n, m) for n in TRANSPORTS for m in ("semantic", "silence")]
    return dict(await asyncio.gather(*(one(n, m) for n, m in pairs)))


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_semantic_mode_fields(runs: dict[tuple[str, str], list[dict[str, Any]]], transport: str) -> None:
    events = runs[(transport, "semantic")]
    ended = [e for e in events if e["type"] == "speech.ended"]
    finals = [e for e in events if e["type"] == "transcript.final"]
    assert ended and finals, events
    assert all(e["reason"] in REASONS for e in ended), ended
    by_model = [e for e in ended if e["reason"] == "turn"]
    assert by_model, ended   # the sentence's end: the model's call, not a timeout
    assert all(isinstance(e["turn_probability"], float) and 0.5 <= e["turn_probability"] <= 1 for e in by_model)
    assert all(f["end_of_turn"] is True for f in finals), finals
    assert not [e for e in events if e["type"] == "speech.started" and "reason" in e]
    assert events[0]["config"]["turn"] == {"mode": "semantic", "eagerness": "low", "threshold": 0.98,
                                           "min_silence_ms": 150, "max_silence_ms": 2500}


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_silence_mode_says_silence_and_nothing_semantic(runs: dict[tuple[str, str], list[dict[str, Any]]],
                                                         transport: str) -> None:
    events = runs[(transport, "silence")]
    ended = [e for e in events if e["type"] == "speech.ended"]
    assert ended and {e["reason"] for e in ended} <= {"silence", "flush"}, ended
    assert all("turn_probability" not in e for e in ended)
    assert all("end_of_turn" not in e for e in events if e["type"] == "transcript.final")
    assert events[0]["config"]["turn"] == {"mode": "silence"}


def test_every_transport_gives_the_same_turns(runs: dict[tuple[str, str], list[dict[str, Any]]]) -> None:
    def turns(events: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
        return [(e["offset_ms"], e["reason"], round(e.get("turn_probability", 0), 2)) for e in events
                if e["type"] == "speech.ended"]

    seen = {name: turns(runs[(name, "semantic")]) for name in TRANSPORTS}
    assert all(t == seen["websocket"] for t in seen.values()), seen


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_a_bad_turn_is_the_same_typed_error(make_client: MakeClient, transport: str) -> None:
    c = await make_client(transport)
    assert await c.start({"audio": PCM16, "turn": {"mode": "semantic", "min_silence_ms": 900,
                                                   "max_silence_ms": 800}}) is None
    err = await c.next_error(15)
    assert err["code"] == "invalid_command" and "max_silence_ms" in err["message"], err
    assert await c.start({"audio": PCM16, "turn": {"mode": "semantic"}}), "unusable after the error"
