"""Kill → `session.migrated` (issue 21's lease + 1 s target): a client whose connection the hub closes
because another node took its session over (the node its connection is bridged through claimed it when
the owner died: WebSocket close 1012, a gRPC call ended `node_lost`, a Socket.IO disconnect by the
server, an SSE event stream closed before `session.ended`) resumes at once. The session has a live owner
then; the reconnect delay is for a hub that may be down. Asserted on the client's own schedule
(`LiveSession.retry_waits`: the wait before each resume), not on seconds. Before: the moved resume waited
`reconnect_delay_s` (0.1 s in the chaos bench, 0.2 s by default). Real nodes, real Redis."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from asrhub.client import (
    GrpcClient,
    SessionEnded,
    SessionMigrated,
    SocketIOClient,
    SpeechStarted,
    SseClient,
    TranscriptFinal,
    WebSocketClient,
)
from tests.cluster.nodes import FIRST, PCM, SECOND, Cluster, Reader, send, speech

DELAY_S = 0.3  # the clients' reconnect delay: a resume after a drop of their own waits it


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    c = Cluster(tmp_path, 2)
    yield c
    c.stop()


def connect(transport: str, port: int, grpc_port: int) -> WebSocketClient | SocketIOClient | SseClient | GrpcClient:
    kw = {"reconnect_delay_s": DELAY_S, "max_reconnects": 10}
    if transport == "grpc":
        return GrpcClient(f"127.0.0.1:{grpc_port}", **kw)  # type: ignore[arg-type]
    http = {"websocket": WebSocketClient, "socketio": SocketIOClient, "sse": SseClient}[transport]
    return http(f"http://127.0.0.1:{port}", **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize("transport", ["websocket", "socketio", "sse", "grpc"])
async def test_a_moved_session_is_resumed_at_once(cluster: Cluster, transport: str) -> None:
    owner, relay = cluster.nodes
    client = connect(transport, owner.port, owner.grpc_port)
    s = await client.session(audio=PCM)
    reader = Reader()
    reading = asyncio.create_task(reader.run(s))
    second = speech(SECOND)
    await send(s, speech(FIRST))
    final1 = await reader.until(lambda e: isinstance(e, TranscriptFinal))
    # the client moves to node1 (a connection of its own dropped): bridged there to node0, its owner
    if isinstance(client, GrpcClient):
        client.target = f"127.0.0.1:{relay.grpc_port}"
    else:
        client.base_url = relay.http
    assert s._conn is not None
    await s._conn.close()
    half = len(second) // 4 * 2
    await send(s, second[:half])
    await reader.until(lambda e: isinstance(e, SpeechStarted) and e.seq > final1.seq)
    assert s.reconnects == 1 and s.retry_waits == [DELAY_S], s.retry_waits
    assert cluster.owner(s.session_id or "") == "node0"

    # node0 dies: node1's bridge sees its lease go, claims the session and closes the client's connection
    assert owner.proc is not None
    owner.proc.send_signal(signal.SIGKILL)
    await send(s, second[half:])
    await s.stop()
    await asyncio.wait_for(reading, 90)
    events = reader.events
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert isinstance(events[-1], SessionEnded) and events[-1].reason == "stop", events[-1]
    m = [e for e in events if isinstance(e, SessionMigrated)]
    assert len(m) == 1 and (m[0].from_node, m[0].to_node) == ("node0", "node1"), m
    # the resume after the move went at once (and was taken: no resume after it)
    assert s.retry_waits == [DELAY_S, 0.0], s.retry_waits
    assert s.reconnects == 2 and s.migrations == 1, (s.reconnects, s.migrations)
    await s.close()
    await client.aclose()
