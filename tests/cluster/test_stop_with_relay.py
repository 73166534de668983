"""A `stop` that went into a relay that then died (issue 21): the client attached to node1 while node0 owns
its session (node1 only relays) sends its last audio and `stop`, and node1 dies before the client hears
`session.ended`. The owner lives, so the client resumes on node2 with no takeover, and cannot know whether
its stop reached node0:
- `undelivered`: node1 is stopped (SIGSTOP) before the stop, so it never reaches node0. The client sends it
  again after the resume, and the session ends `stop` (not `idle`, with the audio's last words);
- `delivered`: node0 is stopped while node1 puts the stop in node0's inbox (`in:{id}`, waited on there),
  then node1 is killed and node0 goes on: the session is stopping when the client's stop comes again. A
  stop on a resumed connection while the session is stopping is the one it repeats: the hub takes it
  quietly, and the application sees no `error` (before: `invalid_command` "is stopping").
Real nodes, real Redis, asrhub.client (WebSocket, HTTP + SSE)."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from asrhub.client import (
    ErrorEvent,
    SessionEnded,
    SessionMigrated,
    SpeechStarted,
    SseClient,
    TranscriptFinal,
    WebSocketClient,
)
from asrhub.cluster import keys
from tests.cluster.nodes import (
    FIRST,
    PCM,
    SECOND,
    Cluster,
    Reader,
    WsClient,
    assert_gapless,
    finals,
    send,
    speech,
)
from tests.support import clip, wer

CLIENTS: dict[str, type[WebSocketClient | SseClient]] = {"websocket": WebSocketClient, "sse": SseClient}
LEASE_MS = 6000  # node0 is stopped for a moment in `delivered`: its lease must outlive that (no takeover)


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    c = Cluster(tmp_path, 3, lease_ms=LEASE_MS)
    yield c
    c.stop()  # (resumes a node a failed test left frozen)


def _last_inbox_id(cluster: Cluster, session_id: str) -> bytes:
    last = cluster.redis.client().xrevrange(keys.inbox(session_id), count=1)
    return bytes(last[0][0]) if last else b"0-0"


def _wait_for_stop_in_inbox(cluster: Cluster, session_id: str, after: bytes) -> None:
    """Block until a `stop` is in the owner's inbox after entry `after` (blocking XREADs, no polling)."""
    r = cluster.redis.client()
    for _ in range(60):
        got = r.xread({keys.inbox(session_id): after}, block=2000)
        for _, entries in got or []:
            for entry_id, fields in entries:
                after = bytes(entry_id)
                if fields.get(b"op") == b"stop":
                    return
    raise AssertionError("the relay never put the stop in the owner's inbox")


@pytest.mark.parametrize(("transport", "where", "replay_audio_s"), [
    ("websocket", "undelivered", 0.0),  # (no held audio: no answer to the resume; before: ended idle)
    ("websocket", "delivered", 30.0),
    ("sse", "delivered", 30.0),         # (the stop's POST had its 202: sent again with ?again=true)
])
async def test_a_stop_into_a_relay_that_died_ends_the_session(cluster: Cluster, transport: str, where: str,
                                                              replay_audio_s: float) -> None:
    owner, relay, other = cluster.nodes
    assert owner.proc is not None and relay.proc is not None
    client = CLIENTS[transport](owner.http, reconnect_delay_s=0.1, max_reconnects=10, replay_audio_s=replay_audio_s)
    s = await client.session(audio=PCM)
    reader = Reader()
    reading = asyncio.create_task(reader.run(s))
    await send(s, speech(FIRST))
    final1 = await reader.until(lambda e: isinstance(e, TranscriptFinal))
    sid = s.session_id or ""
    assert cluster.owner(sid) == "node0"

    client.base_url = relay.http  # the client moves to node1, which relays to node0
    assert s._conn is not None
    await s._conn.close()
    second = speech(SECOND, gap_s=0.0)
    cut = len(second) * 3 // 4 // 2 * 2  # the stop comes mid-sentence: its final is decoded at the stop
    await send(s, second[:cut // 2])
    await reader.until(lambda e: isinstance(e, SpeechStarted) and e.seq > final1.seq)  # (read through node1)
    await send(s, second[cut // 2:cut])
    if where == "undelivered":
        relay.proc.send_signal(signal.SIGSTOP)  # node1 takes no more: the stop stays in buffers
        await s.stop()
    else:
        after = _last_inbox_id(cluster, sid)
        owner.proc.send_signal(signal.SIGSTOP)  # node0 reads nothing for now: the session cannot end yet
        await s.stop()
        await asyncio.to_thread(_wait_for_stop_in_inbox, cluster, sid, after)
    client.base_url = other.http
    relay.proc.send_signal(signal.SIGKILL)
    owner.proc.send_signal(signal.SIGCONT)
    await asyncio.wait_for(reading, 120)

    events = reader.events
    assert not [e for e in events if isinstance(e, ErrorEvent)], [e for e in events if isinstance(e, ErrorEvent)]
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert not [e for e in events if isinstance(e, SessionMigrated)]  # the owner lived: no takeover
    end = events[-1]
    assert isinstance(end, SessionEnded) and end.reason == "stop", end
    finals = [e for e in events if isinstance(e, TranscriptFinal)]
    assert len(finals) == 2, [f.text for f in finals]
    said = " ".join(clip(SECOND).transcript.split()[:len(finals[1].text.split())])
    assert wer([said], [finals[1].text]) < 0.25, finals[1].text  # the words before the stop
    assert s.reconnects == 2
    await s.close()
    await client.aclose()


async def test_a_stop_again_on_a_resumed_connection_is_quiet(cluster: Cluster) -> None:
    """The rule on its own, on the wire: a client sends `stop` mid-sentence, loses its connection before
    `session.ended`, resumes on a relay (node1) and sends `stop` again at once, while node0 is still
    decoding the sentence's final. The second stop is taken as the one it repeats: no `error`, the session
    ends `stop` with both finals."""
    owner, relay, _ = cluster.nodes
    c = WsClient()
    await c.connect(owner)
    second = speech(SECOND, gap_s=0.0)
    await c.send_audio(speech(FIRST) + second[:len(second) // 4 * 2])

    def second_open(_: dict[str, Any]) -> bool:  # the first final, and a partial of the second sentence (any order)
        done = [e for e in c.events if e["type"] == "transcript.final"]
        return bool(done) and any(e["type"] == "transcript.partial" and e["start_ms"] >= done[0]["end_ms"]
                                  for e in c.events)

    await c.recv_until(second_open)
    await c.stop()
    await c.drop()
    await c.connect(relay, resume=True)
    await c.stop()
    await c.rest()
    assert_gapless(c.events)
    assert not [e for e in c.events if e["type"] == "error"], [e for e in c.events if e["type"] == "error"]
    assert c.events[-1]["reason"] == "stop", c.events[-1]
    assert len(finals(c.events)) == 2, finals(c.events)
