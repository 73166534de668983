"""Found by the chaos run (tests/cluster/test_chaos.py): a client whose connection drops while Redis is
away (a primary failover) resumes on a node that cannot look the session up then; the node refuses the
resume with `internal` ("the cluster is unreachable"), a code the contract calls retryable. On WebSocket and
gRPC, whose refusal comes on the new connection (an error event, the call's status), `asrhub.client` took
any refusal for final and the session's iteration ended with ResumeFailed. It now tries again (backing off)
while the refusal is retryable. Real nodes; Redis with its append-only file, stopped and started again."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from asrhub.client import ErrorEvent, GrpcClient, SessionEnded, TranscriptFinal, WebSocketClient
from tests.cluster.nodes import FIRST, PCM, SECOND, Cluster, Reader, send, speech
from tests.cluster.redis_server import RedisServer
from tests.support import clip, until, wer


class _Wake(logging.Handler):
    def __init__(self, event: asyncio.Event) -> None:
        super().__init__(logging.DEBUG)
        self.event = event

    def emit(self, record: logging.LogRecord) -> None:
        self.event.set()


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    c = Cluster(tmp_path, 2, redis=RedisServer(tmp_path, appendonly=True).start())
    yield c
    c.stop()


@pytest.mark.parametrize("transport", ["websocket", "grpc"])
async def test_resume_refused_while_redis_is_away(cluster: Cluster, transport: str) -> None:
    owner, other = cluster.nodes
    client: WebSocketClient | GrpcClient = (
        GrpcClient(f"127.0.0.1:{owner.grpc_port}", reconnect_delay_s=0.1, max_reconnects=20) if transport == "grpc"
        else WebSocketClient(owner.http, reconnect_delay_s=0.1, max_reconnects=20))
    s = await client.session(audio=PCM)
    reader = Reader()
    reading = asyncio.create_task(reader.run(s))
    await send(s, speech(FIRST))
    await reader.until(lambda e: isinstance(e, TranscriptFinal))
    if isinstance(client, GrpcClient):
        client.target = f"127.0.0.1:{other.grpc_port}"
    else:
        client.base_url = other.http
    cluster.redis.stop()  # (its append-only file keeps the session)
    assert s._conn is not None
    changed = asyncio.Event()  # the client's log lines (each resume it makes) and the end of its iteration
    handler = _Wake(changed)
    client_log = logging.getLogger("asrhub.client")
    level = client_log.level
    client_log.setLevel(logging.INFO)  # its "resumed" lines
    client_log.addHandler(handler)
    reading.add_done_callback(lambda _: changed.set())
    try:
        await s._conn.close()  # the connection drops: the client resumes on node1, which cannot look it up
        await until(lambda: s._refusals >= 1 or reading.done(), changed, timeout=60,
                    what="node1 refusing the resume while Redis is away")
    finally:
        client_log.removeHandler(handler)
        client_log.setLevel(level)
    cluster.redis.start()
    await send(s, speech(SECOND))
    await s.stop()
    await asyncio.wait_for(reading, 90)
    events = reader.events
    assert [e for e in events if isinstance(e, ErrorEvent)] == []
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert isinstance(events[-1], SessionEnded) and events[-1].reason == "stop", events[-1]
    texts = [e.text for e in events if isinstance(e, TranscriptFinal)]
    assert len(texts) == 2 and wer([clip(FIRST).transcript, clip(SECOND).transcript], texts) < 0.25, texts
    assert s.reconnects >= 1
    await s.close()
    await client.aclose()
