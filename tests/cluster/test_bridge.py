"""Resume on another node (issue 13, DESIGN §8): a session started on one node, dropped, resumed on
another; the events continue gapless from the client's last seq, and the audio sent to the new node
reaches the owner's pipeline. Three real `asrhub serve` nodes on one real redis-server."""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.cluster.nodes import (
    CHUNK,
    FIRST,
    SECOND,
    Cluster,
    WsClient,
    assert_gapless,
    finals,
    moved_after_a_final,
    speech,
)
from tests.contract.clients import CLIENTS
from tests.support import normalise

BODY = {"audio": {"encoding": "pcm_s16le", "sample_rate": 16000, "channels": 1}}  # StartSession


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    c = Cluster(tmp_path_factory.mktemp("cluster"), 3)
    yield c
    c.stop()


@pytest.fixture(scope="module")
def reference(cluster: Cluster) -> list[str]:
    """The finals of the same audio on one node, without a drop."""
    async def run() -> list[str]:
        c = WsClient()
        await c.connect(cluster.nodes[0])
        await c.send_audio(speech(FIRST, SECOND))
        await c.stop()
        await c.rest()
        assert_gapless(c.events)
        return finals(c.events)

    texts = asyncio.run(run())
    assert len(texts) >= 2, texts
    return texts


async def test_ws_resume_on_another_node(cluster: Cluster, reference: list[str]) -> None:
    c = WsClient()
    await c.connect(cluster.nodes[0])
    await c.send_audio(speech(FIRST))
    await c.recv_until(lambda e: e["type"] == "transcript.final")
    k = c.last_seq
    await c.drop()
    assert cluster.owner(c.session_id) == "node0"

    await c.connect(cluster.nodes[1], resume=True)
    await c.send_audio(speech(SECOND))  # through node1 to node0's pipeline
    await c.stop()
    await c.rest()

    assert_gapless(c.events)  # k+1 ... N after the resume: none lost, none twice
    assert c.events[k]["seq"] == k + 1
    assert [normalise(t) for t in finals(c.events)] == [normalise(t) for t in reference]
    assert cluster.owner(c.session_id) == "node0"  # computed where it was created
    assert cluster.redis.client().hget(f"sess:{c.session_id}", "attached_node") == b"node1"
    assert cluster.redis.client().xlen(f"in:{c.session_id}") <= 1  # the owner took the audio out (a detach may wait)


@pytest.mark.parametrize("transport", ["websocket", "socketio", "grpc", "sse"])
async def test_resume_on_another_node_over_every_transport(cluster: Cluster, reference: list[str],
                                                           transport: str) -> None:
    """The official clients' wires (python-socketio, grpcio, httpx SSE, websockets): dropped on node0
    after its first final, resumed on node2 with the last seq it holds."""
    first = CLIENTS[transport](cluster.nodes[0])
    await first.connect()
    sid = await first.start(dict(BODY))
    assert sid
    await first.stream(speech(FIRST), chunk_bytes=3200, realtime=0)
    await first.wait_for(lambda e: e["type"] == "transcript.final", 60)
    await first.drop()
    held = first.session_events()
    k = held[-1]["seq"]

    second = CLIENTS[transport](cluster.nodes[2])
    await second.connect()
    try:
        assert await second.start({**BODY, "resume": {"session_id": sid, "last_seq": k}}) == sid
        await second.stream(speech(SECOND), chunk_bytes=3200, realtime=0)
        await second.stop()
        rest = await second.wait_ended(120)
    finally:
        await second.close()
    events = held + rest
    assert_gapless(events)
    assert [normalise(t) for t in finals(events)] == [normalise(t) for t in reference], (
        events[-1], cluster.nodes[0].log.read_text()[-4000:])
    assert cluster.owner(sid) == "node0"


async def test_sse_across_three_nodes(cluster: Cluster, reference: list[str]) -> None:
    """Created on node0, events read on node1, audio and stop POSTed to node2 (DESIGN §3.4 over §8)."""
    import httpx

    a, b, c = (httpx.AsyncClient(base_url=n.http, timeout=httpx.Timeout(60.0, read=None)) for n in cluster.nodes)
    try:
        r = await a.post("/v1/sessions", json=BODY)
        assert r.status_code == 201, r.text
        sid = r.json()["session_id"]
        events: list[dict[str, Any]] = []
        got_started = asyncio.Event()

        async def read() -> None:
            async with b.stream("GET", f"/v1/sessions/{sid}/events") as resp:
                assert resp.status_code == 200
                async for line in resp.aiter_lines():
                    if line.startswith("data: "):
                        events.append(json.loads(line[6:]))
                        got_started.set()
                        if events[-1]["type"] == "session.ended":
                            return

        reader = asyncio.create_task(read())
        await asyncio.wait_for(got_started.wait(), 30)
        pcm = speech(FIRST, SECOND)
        for i in range(0, len(pcm), 32000):
            r = await c.post(f"/v1/sessions/{sid}/audio", content=pcm[i:i + 32000],
                             headers={"content-type": "application/octet-stream"})
            assert r.status_code == 202, r.text
        assert (await c.post(f"/v1/sessions/{sid}/stop")).status_code == 202
        await asyncio.wait_for(reader, 120)
    finally:
        for h in (a, b, c):
            await h.aclose()
    assert_gapless(events)
    assert events[-1]["type"] == "session.ended" and events[-1]["reason"] == "stop"
    assert [normalise(t) for t in finals(events)] == [normalise(t) for t in reference]
    assert cluster.owner(sid) == "node0"


async def test_200_random_disconnects_lose_and_repeat_nothing(cluster: Cluster) -> None:
    """Four sessions at once; each client drops its connection at random points (after some audio,
    sometimes after an event) and resumes on a random node, 200 times in all. Every client gets seq
    1..N exactly: none lost, none twice."""
    rng = random.Random(13)
    pcm = speech(FIRST, SECOND, gap_s=0.6)
    drops = 0

    async def one(n: int) -> WsClient:
        nonlocal drops
        c = WsClient()
        await c.connect(cluster.nodes[rng.randrange(3)])
        pos = 0
        while pos < len(pcm):
            step = CHUNK * rng.randint(1, 3)
            await c.send_audio(pcm[pos:pos + step])
            pos += step
            if rng.random() < 0.5:  # a drop right after an event, or while events are on their way
                with contextlib.suppress(TimeoutError):
                    await c.recv(0.2)
            if pos < len(pcm):
                await c.drop()
                drops += 1
                await c.connect(cluster.nodes[rng.randrange(3)], resume=True)
        await c.stop()
        await c.rest()
        return c

    clients = await asyncio.gather(*(one(n) for n in range(4)))
    assert drops >= 200, drops
    for c in clients:
        assert_gapless(c.events)  # every seq once, in order, across all its connections
        assert c.events[0]["type"] == "session.started" and c.events[-1]["reason"] == "stop"
        assert finals(c.events), "no final at all"


async def test_resume_refusals_on_another_node(cluster: Cluster) -> None:
    """A resume the cluster cannot serve is refused with the contract's codes, on any node."""
    import websockets

    c = WsClient()
    await c.connect(cluster.nodes[0])
    await c.send_audio(speech(FIRST))
    await c.stop()
    await c.rest()

    async def refused(body: dict[str, Any]) -> dict[str, Any]:
        async with websockets.connect(cluster.nodes[1].ws) as ws:
            await ws.send(json.dumps({"type": "start", **BODY, **body}))
            ev: dict[str, Any] = json.loads(await ws.recv())
            return ev

    unknown = await refused({"resume": {"session_id": "f" * 32, "last_seq": 0}})
    assert unknown["type"] == "error" and unknown["code"] == "session_not_found", unknown
    ahead = await refused({"resume": {"session_id": c.session_id, "last_seq": c.last_seq + 5}})
    assert ahead["type"] == "error" and ahead["code"] == "invalid_command", ahead
    # an ended session (within the resume window) replays its events, session.ended included
    again = WsClient()
    again.session_id, again.events = c.session_id, c.events[:2]
    await again.connect(cluster.nodes[2], resume=True)
    await again.rest()
    assert again.events == c.events


async def test_a_bridged_client_leaving_starts_the_owners_resume_window(cluster: Cluster) -> None:
    """Attach and detach reach the owner through its inbox: the client resumed on node1 goes away, and
    node0 ends the session `client_gone` once limits.resume_window_s (5 s here) has passed."""
    import redis.asyncio as aioredis

    c = await moved_after_a_final(cluster)
    await c.drop()
    left = time.monotonic()
    r = aioredis.Redis.from_url(cluster.redis.url, socket_timeout=30)
    cursor, ended = f"0-{c.last_seq}", None
    try:
        while ended is None:  # the owner's log, read as it grows (a blocking XREAD, no polling)
            answer = await r.xread({f"ev:{c.session_id}": cursor}, block=15_000)
            assert answer, "the session did not end"
            for entry_id, fields in answer[0][1]:
                cursor = entry_id
                ev = json.loads(fields[b"event"])
                if ev["type"] == "session.ended":
                    ended = ev
    finally:
        await r.aclose()
    waited = time.monotonic() - left
    assert ended["reason"] == "client_gone", ended
    assert 4.0 <= waited <= 5.0 + 3.0, waited
