"""Issue 13, admission across nodes (DESIGN §8 "Admission", "Redis down"): KeyQuota and KeyRateLimit
on a real redis-server, with two independent clients standing for two nodes."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from asrhub.cluster.errors import ClusterUnavailable
from asrhub.cluster.quota import KeyQuota, KeyRateLimit, QuotaEntry
from asrhub.core.auth import Authenticator
from asrhub.core.config import ApiKey, AuthConfig, ServerConfig
from asrhub.core.errors import ErrorCode, HubError
from tests.cluster.redis_server import RedisServer

LONG = 60_000  # a lease that cannot run out during a test (ms)


def client(server: RedisServer) -> aioredis.Redis:
    return aioredis.Redis.from_url(server.url, socket_timeout=0.5, socket_connect_timeout=0.5)


@pytest.fixture
async def nodes(redis_server: RedisServer) -> AsyncIterator[tuple[aioredis.Redis, aioredis.Redis]]:
    """Two independent clients (connection pools), one per node."""
    a, b = client(redis_server), client(redis_server)
    yield a, b
    await a.aclose()
    await b.aclose()


async def redis_now_ms(r: aioredis.Redis) -> int:
    s, us = await r.time()
    return int(s) * 1000 + int(us) // 1000


async def test_a_quota_of_two_holds_across_two_nodes(nodes: tuple[aioredis.Redis, aioredis.Redis]) -> None:
    a, b = nodes
    qa, qb = KeyQuota(a), KeyQuota(b)
    before = await redis_now_ms(a)
    assert await qa.acquire("alpha", "s1", 2, LONG)
    assert await qb.acquire("alpha", "s2", 2, LONG)
    after = await redis_now_ms(a)
    assert not await qa.acquire("alpha", "s3", 2, LONG)
    assert not await qb.acquire("alpha", "s3", 2, LONG)
    assert await qa.acquire("alpha", "s1", 2, LONG)  # already counted: admitted again, no second slot
    assert await qa.count("alpha") == await qb.count("alpha") == 2
    assert await qb.acquire("beta", "s4", 2, LONG)   # another key has its own quota
    # Members are the session ids, scored by lease expiry on Redis's clock; the key expires with them.
    members = dict(await a.zrange("quota:alpha", 0, -1, withscores=True))
    assert set(members) == {b"s1", b"s2"}
    for score in members.values():
        assert before + LONG <= score <= after + LONG + 1000
    assert 0 < await a.pttl("quota:alpha") <= LONG


async def test_release_frees_a_slot_for_either_node(nodes: tuple[aioredis.Redis, aioredis.Redis]) -> None:
    a, b = nodes
    qa, qb = KeyQuota(a, prefix="hub1:"), KeyQuota(b, prefix="hub1:")
    assert await qa.acquire("alpha", "s1", 2, LONG) and await qb.acquire("alpha", "s2", 2, LONG)
    assert not await qb.acquire("alpha", "s3", 2, LONG)
    await qb.release("alpha", "s1")           # released from the other node: it is one set
    await qb.release("alpha", "never-held")   # nothing to release: no error, nothing changes
    assert await qb.acquire("alpha", "s3", 2, LONG)
    assert set(await a.zrange("hub1:quota:alpha", 0, -1)) == {b"s2", b"s3"}
    assert await a.exists("quota:alpha") == 0  # the prefix is on every key


async def test_a_dead_nodes_sessions_expire_while_renewed_ones_stay(
        nodes: tuple[aioredis.Redis, aioredis.Redis]) -> None:
    a, b = nodes
    qa, qb = KeyQuota(a), KeyQuota(b)
    ttl = 300
    assert await qa.acquire("alpha", "a1", 2, ttl)   # node A: dies after this (never renews)
    assert await qb.acquire("alpha", "b1", 2, ttl)   # node B: renews
    assert await qb.renew([("alpha", "b1")], LONG) == []
    assert not await qb.acquire("alpha", "b2", 2, LONG)  # full while A's lease runs
    # Wait for A's lease itself to run out, on Redis's clock (the only sleep: the lease expiry).
    dead_at = await b.zscore("quota:alpha", "a1")
    assert dead_at is not None
    await asyncio.sleep((dead_at - await redis_now_ms(b) + 5) / 1000)
    assert await redis_now_ms(b) > dead_at
    assert await qb.count("alpha") == 1       # a1 no longer counts (still stored until the next acquire)
    assert await qb.acquire("alpha", "b2", 2, LONG)
    assert set(await b.zrange("quota:alpha", 0, -1)) == {b"b1", b"b2"}
    # Node A comes back (it had stalled, not died): its renew says the slot is gone, and re-adds nothing.
    assert await qa.renew([("alpha", "a1"), ("alpha", "b1")], LONG) == [QuotaEntry("alpha", "a1")]
    assert await qa.count("alpha") == 2
    assert await qa.renew([], LONG) == []


async def test_acquire_is_atomic_under_fifty_concurrent_requests(
        nodes: tuple[aioredis.Redis, aioredis.Redis]) -> None:
    a, b = nodes
    quotas = [KeyQuota(a), KeyQuota(b)]
    limit = 7
    results = await asyncio.gather(*(quotas[i % 2].acquire("alpha", f"s{i}", limit, LONG) for i in range(50)))
    assert sum(results) == limit
    held = {m.decode() for m in await a.zrange("quota:alpha", 0, -1)}
    assert held == {f"s{i}" for i, ok in enumerate(results) if ok}
    # Both pools really ran the calls side by side (otherwise this would not test atomicity).
    clients = await a.client_list()
    assert len(clients) > 4, clients


async def test_rate_limit_refuses_the_request_past_the_minute(
        nodes: tuple[aioredis.Redis, aioredis.Redis]) -> None:
    a, b = nodes
    t = (int(time.time()) // 60) * 60 + 50.2  # 9.8 s before the window ends
    ra, rb = KeyRateLimit(a, clock=lambda: t), KeyRateLimit(b, clock=lambda: t)
    for r in (ra, ra, rb, rb, ra):
        await r.hit("alpha", 5)
    with pytest.raises(HubError) as refused:
        await rb.hit("alpha", 5)
    err = refused.value
    assert err.code is ErrorCode.rate_limited and err.http_status == 429 and err.retryable
    assert err.retry_after_s == 10
    # The same message as this node's own limiter (core.auth) gives for the same key.
    local = Authenticator(ServerConfig(auth=AuthConfig(api_keys=[
        ApiKey(key="alpha-secret-key", name="alpha", requests_per_minute=5)])))
    with pytest.raises(HubError) as local_refused:
        for _ in range(6):
            local.authenticate("alpha-secret-key")
    assert err.message == local_refused.value.message
    key = f"rate:alpha:{int(t // 60)}"
    assert int(await a.get(key)) == 6 and 0 < await a.ttl(key) <= 11
    await ra.hit("beta", 5)  # another key has its own window
    t += 60                  # the next window starts from zero
    await ra.hit("alpha", 5)


async def test_redis_stopped_is_cluster_unavailable_quickly_then_heals(redis_server: RedisServer) -> None:
    r = client(redis_server)
    quota, rate = KeyQuota(r, timeout_s=0.5), KeyRateLimit(r, timeout_s=0.5)
    try:
        assert await quota.acquire("alpha", "s1", 2, LONG)
        redis_server.stop()
        calls = {"acquire": quota.acquire("alpha", "s2", 2, LONG), "renew": quota.renew([("alpha", "s1")], LONG),
                 "release": quota.release("alpha", "s1"), "count": quota.count("alpha"), "hit": rate.hit("alpha", 5)}
        for what, call in calls.items():
            t0 = time.monotonic()
            with pytest.raises(ClusterUnavailable, match="Redis unavailable"):
                await call
            assert time.monotonic() - t0 < 2.0, what
        redis_server.start()  # same port, empty (no persistence): the same client heals
        assert await quota.renew([("alpha", "s1")], LONG) == [QuotaEntry("alpha", "s1")]
        assert await quota.acquire("alpha", "s1", 2, LONG)
        await rate.hit("alpha", 5)
    finally:
        await r.aclose()


async def test_redis_that_stops_answering_is_cluster_unavailable_not_a_hang(redis_server: RedisServer) -> None:
    r = client(redis_server)
    quota = KeyQuota(r, timeout_s=0.5)
    assert redis_server.proc is not None
    pid = redis_server.proc.pid
    try:
        assert await quota.acquire("alpha", "s1", 2, LONG)
        os.kill(pid, signal.SIGSTOP)  # accepts nothing, answers nothing
        t0 = time.monotonic()
        with pytest.raises(ClusterUnavailable) as down:
            await quota.acquire("alpha", "s2", 2, LONG)
        assert time.monotonic() - t0 < 2.0
        assert isinstance(down.value.__cause__, TimeoutError | aioredis.RedisError)
    finally:
        os.kill(pid, signal.SIGCONT)
    try:
        assert await quota.acquire("alpha", "s2", 2, LONG)
        assert await quota.count("alpha") == 2
    finally:
        await r.aclose()
