"""Found by the chaos run (tests/cluster/test_chaos.py): during a Redis primary failover, a node bridging a
session (its client connected there, the session computed on another node) dropped what its client had
just sent ("N message(s) for the owner lost"): audio the owner never heard, words lost. The bridge now
writes it to the owner's inbox once Redis answers again, in order; SSE's POST answers after that, or 500
when Redis stays away past the bound. A real redis-server (its append-only file keeps the keys across the
stop) and the real BridgedSession; its host is the few attributes a node gives it."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from asrhub.cluster import bridge as bridge_mod
from asrhub.cluster import keys
from asrhub.cluster.bridge import BridgedSession
from asrhub.cluster.messages import InboxMessage
from asrhub.core.errors import HubError
from tests.cluster.redis_server import RedisServer
from tests.support import until


class Host:
    """What a BridgedSession uses of its node."""

    def __init__(self, url: str) -> None:
        self.node_id = "node1"
        self.client = aioredis.Redis.from_url(url, socket_timeout=5)
        self.blocking = self.client
        self.block_ms = 250
        self.max_message_bytes = 1 << 20
        self.session_ttl_s = 60
        self.bridges = 0

    async def owner_alive(self, owner: str) -> bool:
        return True

    async def owner_lost(self, session_id: str, owner: str) -> None:
        raise AssertionError("not here")


class Waits(logging.Handler):
    """Sets `event` on each log line of the bridge."""

    def __init__(self, event: asyncio.Event) -> None:
        super().__init__(logging.INFO)
        self.event = event
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())
        self.event.set()


async def test_messages_taken_while_redis_is_away_reach_the_inbox(tmp_path: Path) -> None:
    server = RedisServer(tmp_path, appendonly=True).start()
    host = Host(server.url)
    logger = logging.getLogger(bridge_mod.__name__)
    changed = asyncio.Event()
    handler = Waits(changed)
    level = logger.level
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    try:
        b = BridgedSession(host, "s1", "node0", "node1#1")  # type: ignore[arg-type]
        await b.attach()
        server.stop()
        chunks = [bytes([i]) * 3200 for i in range(1, 4)]
        for c in chunks:
            b.audio(c)
        b.command("stop")
        done = asyncio.create_task(b.flushed())
        await until(lambda: any("wait" in line or "lost" in line for line in handler.lines), changed, timeout=30,
                    what="the bridge finding Redis away")
        server.start()
        await asyncio.wait_for(done, 30)
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    got = [InboxMessage.parse(f) for _, f in await host.client.xrange(keys.inbox("s1"))]
    assert [(m.op, m.data) for m in got if m is not None] == [
        ("attach", b""), *(("audio", c) for c in chunks), ("stop", b""), ("detach", b"")]
    await host.client.aclose()
    server.stop()


async def test_a_bridge_gives_up_past_the_bound(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Redis away for longer than GIVE_UP_S: the messages are lost and `flushed` says so (SSE's POST is
    answered 500 and its client sends the audio again)."""
    monkeypatch.setattr(bridge_mod, "GIVE_UP_S", 0.3)
    server = RedisServer(tmp_path).start()
    host = Host(server.url)
    b = BridgedSession(host, "s2", "node0", "node1#1")  # type: ignore[arg-type]
    await b.attach()
    server.stop()
    b.audio(b"\x01" * 3200)
    try:
        await asyncio.wait_for(b.flushed(), 30)
    except HubError as e:
        assert e.code == "internal" and "not delivered" in e.message, e
    else:
        raise AssertionError("flushed() did not report the messages it could not deliver")
    finally:
        await host.client.aclose()
