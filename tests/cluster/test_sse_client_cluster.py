"""`asrhub.client`'s SSE transport in a cluster: what the chaos run (tests/cluster/test_chaos.py) found.

1. Behind a balancer an SSE client's POST /v1/sessions
and its GET of the events may reach different nodes. The node that answers the GET learns of the session from
Redis (`sess:{id}`), which its owner writes just after it answered the POST: a GET in between was answered
404 session_not_found and `asrhub.client` ended the session at its start. The client now asks again, a few
times over ~3 s, for the events of a session it has just created. The owner's write is held back by
`CLIENT PAUSE … WRITE` (reads go on). The hub now answers the POST only once the session is in Redis
(test_sse_new_session_cluster.py), so against this hub the client's asking again is reached only when the
owner's Redis did not answer in time (or against an older hub); here the client reads the session on the
other node all the same.
2. While Redis is away (a primary failover), a node bridging a session answers its audio POSTs (and its
event stream) 500 ("the cluster is unreachable"): the client dropped that audio (an `error` event in the
stream; and ended the session on a stream's 500). It now sends a command again while the answer is a 5xx
(and resumes when the event stream is).
Real nodes, real Redis."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from asrhub.client import ErrorEvent, SessionEnded, SessionStarted, SseClient, StartSession, TranscriptFinal
from tests.cluster.nodes import FIRST, PCM, SECOND, Cluster, Reader, send, speech
from tests.cluster.redis_server import RedisServer
from tests.support import FileWatch, clip, until, wer


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    # Redis with its append-only file: stopped and started again, it still has the sessions
    c = Cluster(tmp_path, 2, redis=RedisServer(tmp_path, appendonly=True).start())
    yield c
    c.stop()


async def test_events_of_a_new_session_read_on_another_node(cluster: Cluster) -> None:
    owner, other = cluster.nodes
    conn = SseClient(owner.http).connection()
    try:
        cluster.redis.client().execute_command("CLIENT", "PAUSE", "700", "WRITE")
        sid = await conn.open(StartSession(audio=PCM))
        assert sid
        conn.events_url = f"{other.http}/v1/sessions/{sid}/events"  # where a balancer may send the GET
        first = await anext(aiter(conn.events()))
    finally:
        await conn.close()
    assert isinstance(first, SessionStarted) and first.session_id == sid, first
    assert cluster.owner(sid) == "node0"


async def test_redis_away_under_a_bridged_session(cluster: Cluster) -> None:
    owner, other = cluster.nodes
    client = SseClient(owner.http, reconnect_delay_s=0.1, max_reconnects=20)
    s = await client.session(audio=PCM)
    reader = Reader()
    reading = asyncio.create_task(reader.run(s))
    first, second = speech(FIRST), speech(SECOND)
    await send(s, first)
    await reader.until(lambda e: isinstance(e, TranscriptFinal))
    assert s._conn is not None and s.session_id
    # a balancer sends the audio and command POSTs to node1 (least_conn), which bridges them to node0; the
    # event stream stays on node0
    s._conn.audio_url = f"{other.http}/v1/sessions/{s.session_id}/audio"  # type: ignore[attr-defined]
    s._conn.http.base_url = other.http  # type: ignore[attr-defined]
    quarter = len(second) // 8 * 2
    await send(s, second[:quarter])
    assert cluster.owner(s.session_id) == "node0"
    refused = FileWatch(other.log)
    cluster.redis.stop()  # (its append-only file keeps the sessions)

    async def the_rest() -> None:
        await send(s, second[quarter:])
        await s.stop()

    talking = asyncio.create_task(the_rest())
    await until(lambda: re.search(r'/audio(\?\S*)? HTTP/1.1" 500', other.log.read_text()) is not None, refused, timeout=60,
                what="node1 answering an audio POST 500 while Redis is away")
    cluster.redis.start()
    await asyncio.wait_for(talking, 90)
    await asyncio.wait_for(reading, 90)
    events = reader.events
    assert [e for e in events if isinstance(e, ErrorEvent)] == []
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert isinstance(events[-1], SessionEnded) and events[-1].reason == "stop", events[-1]
    texts = [e.text for e in events if isinstance(e, TranscriptFinal)]
    assert len(texts) == 2, texts
    assert wer([clip(SECOND).transcript], [texts[1]]) < 0.25, texts[1]  # the audio sent while Redis was away too
    await s.close()
