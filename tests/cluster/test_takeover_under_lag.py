"""Found by the ten-minute chaos run (`bench.bench_cluster chaos`): on an overloaded machine the node that
claimed a dead node's session refused to go on with it ("the hub is at capacity (results trail audio by
13 s)": the admission lag gate, `limits.admission_lag_s`) and ended it, 8 sessions at once. A moved session
is no new load for the cluster: the lag gate (for new sessions) no longer applies to a takeover. Here node1
is made to lag (`admission_lag_s` 0.05 s and a session of its own given two minutes of speech at once): it refuses new
sessions, and still takes over the session of node0 when node0 is `kill -9`'d. Real nodes, real Redis."""

from __future__ import annotations

import asyncio
import json
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
import websockets

from asrhub.client import SessionEnded, SessionMigrated, TranscriptFinal, WebSocketClient
from tests.cluster.chaos import script
from tests.cluster.nodes import FIRST, SECOND, START, Cluster, WsClient, midway, send
from tests.support import clip, wer


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    c = Cluster(tmp_path, 2, env={"ASRHUB_LIMITS__ADMISSION_LAG_S": "0.05"})
    yield c
    c.stop()  # (resumes a node a failed test left frozen)


async def test_a_lagging_node_still_takes_a_dead_nodes_session_over(cluster: Cluster) -> None:
    owner, other = cluster.nodes
    client = WebSocketClient(owner.http, reconnect_delay_s=0.1, max_reconnects=20)
    m = await midway(client)
    s, reader, reading = m.session, m.reader, m.reading

    busy = WsClient()  # node1's own session: two minutes of speech at once, its finals queue up
    await busy.connect(other)
    await busy.send_audio(script(0, 120.0, 0.6)[0])
    refusal: dict[str, object] = {}
    for _ in range(60):  # node1 lags once its finals queue: asked again at each utterance end and final of
        # its session (the utterances end as the audio arrives; on a quiet machine the finals may come in
        # one batch, after which nothing waits and nothing lags)
        await busy.recv_until(lambda e: e["type"] in ("speech.ended", "transcript.final"))
        await s.keepalive()  # the paused session stays open however long node1 takes to lag (idle timeout)
        async with websockets.connect(other.ws) as ws:
            await ws.send(json.dumps(START))
            refusal = json.loads(await asyncio.wait_for(ws.recv(), 30))
        if refusal["type"] == "error":
            break
    assert refusal["type"] == "error" and refusal["code"] == "too_many_sessions", refusal  # a new session is refused

    client.base_url = other.http
    assert owner.proc is not None
    owner.proc.send_signal(signal.SIGKILL)
    await send(s, m.rest)
    await s.stop()
    await asyncio.wait_for(reading, 90)
    events = reader.events
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert isinstance(events[-1], SessionEnded) and events[-1].reason == "stop", events[-3:]
    moved = [e for e in events if isinstance(e, SessionMigrated)]
    assert len(moved) == 1 and moved[0].to_node == "node1", moved
    texts = [e.text for e in events if isinstance(e, TranscriptFinal)]
    assert len(texts) == 2 and wer([clip(FIRST).transcript, clip(SECOND).transcript], texts) < 0.25, texts
    await s.close()
    await busy.drop()
