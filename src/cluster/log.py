"""The owner's writer of one session's event log (DESIGN §8 "Event log").

One task per session, a reader of the session's local channel like any client (but not counted as
one). It takes every event available, appends them in one atomic call (`append.py`), and commits them
on the channel, which is when the session's local clients may see them. So no client ever holds an
event that the log does not. Three ends besides `session.ended`:
- the log refused the next seq: another node declared this one lost and ended the session there. The
  channel is fenced (its clients stop and resume elsewhere) and the local copy ends;
- Redis is unreachable: the session goes on locally (the channel is ungated) and the writer waits for
  Redis to answer again (a Sentinel failover is such a gap). It then *rejoins*: the log still names
  this node the owner, so the events of the gap (still in the channel's history) are appended after
  what the log holds, also those an asynchronous replica never got, and the channel is gated again;
- Redis lost the log (restarted without data, or the session was younger than what replication
  carried): the session goes on locally only, as on a single node;
- the task is cancelled (the session is forgotten).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

import redis.exceptions

from ..core.channel import EventChannel
from . import keys, wire
from .append import LogAppender
from .errors import REDIS_DOWN

if TYPE_CHECKING:
    import redis.asyncio as aioredis

log = logging.getLogger(__name__)


class EventLog:
    def __init__(self, client: aioredis.Redis, appender: LogAppender, node_id: str, session_id: str,
                 channel: EventChannel, api_key_id: str, ttl_s: int, ended_ttl_s: int,
                 on_fenced: Callable[[str], None], on_redis_down: Callable[[], None],
                 on_ended: Callable[[str], Awaitable[None]], observe: Callable[[float], None] | None = None,
                 redis_back: asyncio.Event | None = None, registered: bool = False, start: str = "",
                 transport: str = "") -> None:
        self.client = client
        self.appender = appender
        self.node_id = node_id
        self.session_id = session_id
        self.channel = channel
        self.api_key_id = api_key_id
        self.ttl_s = ttl_s              # while the session lives (the node's lease loop refreshes it)
        self.ended_ttl_s = ended_ttl_s  # after session.ended: the resume window
        self.on_fenced = on_fenced
        self.on_redis_down = on_redis_down
        self.on_ended = on_ended        # session.ended is in the log (its clients see it after this)
        self.observe = observe          # seconds each append took
        self.redis_back = redis_back    # set while the node reaches Redis (None: never rejoin)
        self.registered = registered    # `sess:{id}` already names this node (a takeover wrote it)
        self.start = start              # the session's start options (JSON): what a takeover opens it with
        self.transport = transport
        self.cursor = channel.committed  # the last seq in the log

    async def run(self) -> None:
        sid = self.session_id
        while True:
            try:
                if not self.registered:
                    await self.client.hset(keys.session(sid), mapping={
                        "owner": self.node_id, "attached_node": self.node_id, "last_seq": 0,
                        "created": time.time(), "api_key": self.api_key_id, "start": self.start,
                        "transport": self.transport})
                    await self.client.expire(keys.session(sid), self.ttl_s)
                    self.registered = True
                await self._write()
                return
            except REDIS_DOWN as e:
                log.warning("session %s: Redis unreachable (%s); it goes on on this node only until Redis "
                            "answers again", sid, e)
                self.channel.ungate()
                self.on_redis_down()
            except redis.exceptions.ResponseError as e:
                log.error("session %s: Redis refused the event log (%s); it goes on on this node only", sid, e)
                self.channel.ungate()
                return
            except Exception:  # never leave the session's clients waiting on a log that stopped
                log.exception("session %s: the event log failed; it goes on on this node only", sid)
                self.channel.ungate()
                return
            if not self.registered or not await self._rejoin():
                return

    async def _write(self) -> None:
        sid = self.session_id
        while True:
            batch = await self.channel.log_batch(self.cursor)
            ended = batch[-1].type == "session.ended"
            t0 = time.perf_counter()
            res = await self.appender.append(sid, self.cursor, batch, self.ended_ttl_s if ended else self.ttl_s,
                                             writer=self.node_id)
            if self.observe is not None:
                self.observe(time.perf_counter() - t0)
            if res.lost:
                log.warning("session %s: its event log is gone from Redis; it goes on on this node only", sid)
                self.channel.ungate()
                return
            if not res.ok:
                log.warning("session %s: another node wrote its log at seq %d (this node was taken for lost); "
                            "its copy here ends", sid, res.last_seq)
                self._fence()
                return
            self.cursor = res.last_seq
            if ended:
                await self.on_ended(sid)
            self.channel.commit(self.cursor)
            if ended:
                return

    def _fence(self) -> None:
        self.channel.fence()
        self.on_fenced(self.session_id)

    async def _rejoin(self) -> bool:
        """Redis answers again (after an outage, or a Sentinel failover): continue the log where it is,
        when it still names this node the owner. False: the session stays local-only (or is fenced)."""
        sid = self.session_id
        while True:
            if self.redis_back is None:
                return False
            await self.redis_back.wait()
            try:
                pipe = self.client.pipeline(transaction=False)
                pipe.hget(keys.session(sid), "owner")
                pipe.xrevrange(keys.events(sid), "+", "-", count=1)
                owner, raw_top = await pipe.execute()
            except REDIS_DOWN:
                self.on_redis_down()  # (clears redis_back until the next lease beat that reaches Redis)
                continue
            top = wire.entries(raw_top)
            last = wire.seq_of(top[0][0]) if top else 0
            owner_id = owner.decode() if isinstance(owner, bytes) else owner
            if owner_id is None or (last == 0 and self.cursor > 0):
                log.warning("session %s: Redis came back without its log; it goes on on this node only", sid)
                return False
            if owner_id != self.node_id:
                log.warning("session %s: node %s took it over while Redis was away from here; its copy here "
                            "ends", sid, owner_id)
                self._fence()
                return False
            if last > self.cursor:  # an append whose answer was lost on the way, or another writer's
                mine = self.channel.replay_from(last - 1)[:1]
                if not mine or mine[0].seq != last or top[0][1][b"event"] != mine[0].to_json().encode():
                    log.warning("session %s: another node wrote its log at seq %d while Redis was away from "
                                "here; its copy here ends", sid, last)
                    self._fence()
                    return False
            if not self.channel.can_replay(last):
                log.warning("session %s: the events after seq %d are no longer held here; it goes on on this "
                            "node only", sid, last)
                return False
            if last < self.cursor:
                log.warning("session %s: the log in Redis ends at seq %d, %d event(s) short of what it held "
                            "(not replicated before a failover); they are written again", sid, last,
                            self.cursor - last)
            self.cursor = last
            self.channel.gated = True  # clients that already saw more wait until the log holds it again
            self.channel.commit(last)
            log.info("session %s: its log continues in Redis after seq %d", sid, last)
            return True
