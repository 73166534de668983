"""A relay's death loses no audio (issue 21): a client attached to node1 while node0 owns its session (node1
only relays: events from the log, audio to node0's inbox) sends audio node1 takes but never delivers
(node1 is stopped, then `kill -9`'d). The owner lives, so there is no takeover; the client resumes on
node2, and the hub's answer to the resume (`session.started {seq 0, resumed, audio_from_ms}`, asked for
with `resume.held_audio`) says how much audio the session has received, taken by node0 after it has
applied everything in its inbox before node2's attach. The client sends its held audio again from there:
the sentence spoken across the kill is whole in its final, and the owner's timeline holds every sample
once (its length is the audio's). Before: the resumed client sent only new audio and those seconds were
lost. Real nodes, real Redis, asrhub.client."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from asrhub.client import (
    SessionEnded,
    SessionMigrated,
    SocketIOClient,
    SpeechStarted,
    TranscriptFinal,
    WebSocketClient,
)
from tests.cluster.nodes import FIRST, PCM, SECOND, Cluster, Reader, send, speech
from tests.support import clip, wer

CLIENTS: dict[str, type[WebSocketClient | SocketIOClient]] = {"websocket": WebSocketClient,
                                                              "socketio": SocketIOClient}


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    c = Cluster(tmp_path, 3)
    yield c
    c.stop()  # (resumes a node a failed test left frozen)


@pytest.mark.parametrize("transport", list(CLIENTS))
async def test_relay_killed_mid_utterance_loses_no_audio(cluster: Cluster, transport: str) -> None:
    owner, relay, other = cluster.nodes
    client = CLIENTS[transport](owner.http, reconnect_delay_s=0.1, max_reconnects=10)
    s = await client.session(audio=PCM)
    reader = Reader()
    reading = asyncio.create_task(reader.run(s))
    await send(s, speech(FIRST))
    final1 = await reader.until(lambda e: isinstance(e, TranscriptFinal))
    assert cluster.owner(s.session_id or "") == "node0"

    # the client moves to node1, which relays to node0
    client.base_url = relay.http
    assert s._conn is not None
    await s._conn.close()
    second = speech(SECOND)
    cut1, cut2 = 16000 * 2 * 3 // 2, 16000 * 2 * 4  # 1.5 s through the relay, then 2.5 s it never delivers
    await send(s, second[:cut1])
    await reader.until(lambda e: isinstance(e, SpeechStarted) and e.seq > final1.seq)  # (read through node1)
    assert s.reconnects == 1
    assert relay.proc is not None
    relay.proc.send_signal(signal.SIGSTOP)  # node1 takes no more: what the client sends now stays in buffers
    await send(s, second[cut1:cut2])
    client.base_url = other.http
    relay.proc.send_signal(signal.SIGKILL)
    await send(s, second[cut2:])  # through the resume on node2
    await s.stop()
    await asyncio.wait_for(reading, 120)

    events = reader.events
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert not [e for e in events if isinstance(e, SessionMigrated)]  # the owner lived: no takeover
    assert cluster.owner(s.session_id or "") == "node0"
    end = events[-1]
    assert isinstance(end, SessionEnded) and end.reason == "stop", end
    total_ms = len(speech(FIRST, SECOND)) * 1000 // 32000
    # the owner's timeline: every sample once (none lost with node1, none sent twice)
    assert abs(end.stats.audio_ms - total_ms) <= 10, (end.stats.audio_ms, total_ms, s.replayed_ms)
    finals = [e for e in events if isinstance(e, TranscriptFinal)]
    assert len(finals) == 2, [f.text for f in finals]
    assert wer([clip(SECOND).transcript], [finals[1].text]) < 0.2, finals[1].text  # the words across the kill
    assert s.reconnects == 2 and s.replayed_ms > 0
    await s.close()
    await client.aclose()
