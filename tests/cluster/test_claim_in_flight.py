"""A takeover under way (DESIGN §8 "Owner death → takeover"): Redis names the claiming node the owner a
moment before the session is open there. A command, an audio POST or a resume that reaches that node in
between is served once the session is open, not answered `session_not_found` (the CI run of stop 28 saw
an SSE audio POST get that 404 in this window, under load). A real hub in-process, a real redis-server;
the claim is held in that window by the test, released on its signal."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio as aioredis

from asrhub.api.binding import SessionBinding
from asrhub.core.config import load_config
from asrhub.core.events import SessionMigrated, parse_event
from asrhub.hub import Hub
from tests.cluster.redis_server import RedisServer
from tests.cluster.test_claim import a_session_of_node0


@pytest.fixture
async def hub(redis_server: RedisServer) -> AsyncIterator[Hub]:
    """node1, with the embedded default config (its providers open the session taken over)."""
    h = Hub(load_config(env={"ASRHUB_CLUSTER__REDIS_URL": redis_server.url, "ASRHUB_CLUSTER__NODE_ID": "node1",
                             "ASRHUB_SERVER__GRPC_ENABLED": "false", "ASRHUB_SERVER__WATCH_CONFIG": "false"}))
    await h.start()
    yield h
    await h.stop()


class HeldClaim:
    """Wraps the node's claimer: the real claim runs (Redis names node1 the owner), then waits for
    `release` before the node goes on to open the session."""

    def __init__(self, claim: Any) -> None:
        self.claim = claim
        self.claimed = asyncio.Event()
        self.release = asyncio.Event()

    async def __call__(self, *args: Any) -> Any:
        res = await self.claim(*args)
        self.claimed.set()
        await self.release.wait()
        return res


async def test_a_command_in_the_claims_window_reaches_the_session_opened_here(
        hub: Hub, redis_server: RedisServer) -> None:
    node = hub.cluster
    assert node is not None
    client = aioredis.Redis.from_url(redis_server.url)
    try:
        await a_session_of_node0(client)  # node0's session; node0 has no lease (dead)
    finally:
        await client.aclose()
    held = HeldClaim(node.claimer.claim)
    node.claimer.claim = held  # type: ignore[method-assign]
    taking = asyncio.create_task(node.take_over("s1", "node0"))
    await held.claimed.wait()
    rec = await node.find("s1")
    assert rec is not None and rec.owner == "node1" and not hub.service.holds("s1")  # the window
    waiting: list[str] = []
    both_wait = asyncio.Event()
    settled = node.claim_settled

    async def claim_settled(session_id: str) -> bool:
        waiting.append(session_id)
        if len(waiting) == 2:
            both_wait.set()
        return await settled(session_id)

    node.claim_settled = claim_settled  # type: ignore[method-assign]
    binding = asyncio.create_task(SessionBinding.of(hub.service, "sse", "s1"))
    bridged = asyncio.create_task(node.bridge("s1", None, attach=False))
    await both_wait.wait()  # both wait on the claim, not answered
    assert not binding.done() and not bridged.done()
    held.release.set()
    assert await taking is True and hub.service.holds("s1")
    bind = await binding
    assert bind.remote is None and bind.session is not None and bind.session.id == "s1"
    bind.audio(b"\0\0" * 1600)  # the audio reaches the session opened here
    bridge = await bridged  # (it read the owner in the window: served through this node's own inbox)
    assert bridge.owner == "node1" and bridge.live
    bridge.detach()
    client = aioredis.Redis.from_url(redis_server.url)
    try:
        logged = [parse_event(fields[b"event"]) for _, fields in await client.xrange("ev:s1") or []]
    finally:
        await client.aclose()
    assert [(e.from_node, e.to_node) for e in logged if isinstance(e, SessionMigrated)] == [("node0", "node1")]
