"""The node's lease `node:{id}` (DESIGN §8): `SET … PX lease_ms`, renewed every lease_ms / 3, with the
node's load, lag, live count and URL. A node whose lease is gone is dead to the others. The same beat
refreshes the expiry of the logs of the node's live sessions, and tells whether Redis answers at all."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

from . import keys
from .errors import REDIS_DOWN

if TYPE_CHECKING:
    import redis.asyncio as aioredis

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class NodeLoad:
    url: str
    live: int       # live sessions owned here
    lag_s: float    # how far finals trail audio now
    load: float     # live / max_sessions
    ts: float = 0.0


class Lease:
    def __init__(self, client: aioredis.Redis, node_id: str, lease_ms: int, load: Callable[[], NodeLoad],
                 live_sessions: Callable[[], Iterable[str]], session_ttl_s: int,
                 on_health: Callable[[bool], None], also: Callable[[], Awaitable[None]] | None = None) -> None:
        self.client = client
        self.node_id = node_id
        self.lease_ms = lease_ms
        self.load = load
        self.live_sessions = live_sessions
        self.session_ttl_s = session_ttl_s
        self.on_health = on_health  # True: Redis answered this beat; False: it did not
        self.also = also            # what else renews with the lease (the quotas)
        self.renewed = asyncio.Event()  # set after each beat that reached Redis

    async def beat(self) -> bool:
        load = self.load()
        value = json.dumps(asdict(NodeLoad(load.url, load.live, round(load.lag_s, 3), round(load.load, 3),
                                           time.time())))
        try:
            pipe = self.client.pipeline(transaction=False)
            pipe.set(keys.node(self.node_id), value, px=self.lease_ms)
            for sid in self.live_sessions():
                pipe.expire(keys.session(sid), self.session_ttl_s)
                pipe.expire(keys.events(sid), self.session_ttl_s)
            await pipe.execute()
        except REDIS_DOWN as e:
            log.debug("lease of %s not renewed: %s", self.node_id, e)
            self.on_health(False)
            return False
        self.on_health(True)
        self.renewed.set()
        return True

    async def run(self) -> None:
        period = self.lease_ms / 3000.0
        while True:
            if await self.beat() and self.also is not None:
                await self.also()
            await asyncio.sleep(period)

    async def release(self) -> None:
        try:
            await self.client.delete(keys.node(self.node_id))
        except REDIS_DOWN:
            pass
