"""Kill → first event after takeover (issue 21's lease + 1 s target): a resume that reaches a live node
while the dead owner's lease still lives cannot move the session yet. The node refuses it for now,
`node_lost` with `retry_after_ms` (what is left of the old lease, within (0, lease]), and asrhub.client
resumes at that moment rather than on its generic backoff; that resume finds the lease gone and the node
takes the session over in the same request (no bridge to the dead node that is fenced later, no second
resume). Asserted on the client's schedule (its refusals and the wait before each resume), not on
seconds. Before: no refusal; the resume was bridged to the dead node, fenced once the lease ran out and
the bridge's next check claimed the session, and the client resumed a second time after its backoff."""

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
    SseClient,
    TranscriptFinal,
    WebSocketClient,
)
from tests.client.proxy import TcpProxy
from tests.cluster.nodes import Cluster, midway, send

AnyClient = WebSocketClient | SocketIOClient | SseClient | GrpcClient


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    c = Cluster(tmp_path, 2)
    yield c
    c.stop()  # (resumes a node a failed test left frozen)


def connect(transport: str, port: int) -> AnyClient:
    kw = {"reconnect_delay_s": 0.1, "max_reconnects": 10}
    if transport == "grpc":
        return GrpcClient(f"127.0.0.1:{port}", **kw)  # type: ignore[arg-type]
    http = {"websocket": WebSocketClient, "socketio": SocketIOClient, "sse": SseClient}[transport]
    return http(f"http://127.0.0.1:{port}", **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize("transport", ["websocket", "socketio", "sse", "grpc"])
async def test_resume_refused_until_the_lease_runs_out(cluster: Cluster, transport: str) -> None:
    owner, other = cluster.nodes
    # the client reaches node0 through a relay whose connections the test cuts: the owner freezes
    # (SIGSTOP: its lease is no longer renewed, as a dead node's) and the client's connection drops at
    # once, so the client resumes while the lease lives (a killed 600 MB process may take longer to close
    # its sockets than the lease lasts)
    proxy = await TcpProxy(owner.grpc_port if transport == "grpc" else owner.port).start()
    client = connect(transport, proxy.port)
    mid = await midway(client)  # a final in, the second sentence's utterance open
    s = mid.session
    if isinstance(client, GrpcClient):
        client.target = f"127.0.0.1:{other.grpc_port}"
    else:
        client.base_url = other.http
    assert owner.proc is not None
    owner.proc.send_signal(signal.SIGSTOP)
    assert proxy.sever() >= 1
    await send(s, mid.rest)
    await s.stop()
    await asyncio.wait_for(mid.reading, 90)
    events = mid.reader.events

    assert isinstance(events[-1], SessionEnded) and events[-1].reason == "stop", events[-1]
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert len([e for e in events if isinstance(e, SessionMigrated)]) == 1
    assert len([e for e in events if isinstance(e, TranscriptFinal)]) == 2
    # the resume while the lease lived was refused, saying for how long it lives on ...
    assert len(s.refused) == 1, s.refused
    refusal = s.refused[0]
    assert refusal.code == "node_lost" and refusal.retry_after_ms is not None, refusal
    assert 0 < refusal.retry_after_ms <= cluster.lease_ms, refusal.retry_after_ms
    # ... the client resumed exactly then (not on its backoff), and that resume took the session over
    assert s.retry_waits[-1] == refusal.retry_after_ms / 1000, (s.retry_waits, refusal.retry_after_ms)
    # two resumes in all: the one refused (after the client's first backoff), the one that took over
    assert len(s.retry_waits) == 2 and s.retry_waits[0] == client.reconnect_delay_s, s.retry_waits
    assert s.migrations == 1
    owner.proc.send_signal(signal.SIGKILL)
    await s.close()
    await client.aclose()
    await proxy.close()
