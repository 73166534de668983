"""The owner's writer of one session's event log (DESIGN §8 "Event log").

One task per session, a reader of the session's local channel like any client (but not counted as
one). It takes every event available, appends them in one atomic call (`append.py`), and commits them
on the channel, which is when the session's local clients may see them. So no client ever holds an
event that the log does not. Three ends besides `session.ended`:
- the log refused the next seq: another node declared this one lost and ended the session there. The
  channel is fenced (its clients stop and resume elsewhere) and the local copy ends;
- Redis is unreachable, or lost the log (restarted without data): the session goes on locally only,
  as on a single node (the channel is ungated);
- the task is cancelled (the session is forgotten).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

import redis.exceptions

from ..core.channel import EventChannel
from . import keys
from .append import LogAppender
from .errors import REDIS_DOWN

if TYPE_CHECKING:
    import redis.asyncio as aioredis

log = logging.getLogger(__name__)


class EventLog:
    def __init__(self, client: aioredis.Redis, appender: LogAppender, node_id: str, session_id: str,
                 channel: EventChannel, api_key_id: str, ttl_s: int, ended_ttl_s: int,
                 on_fenced: Callable[[str], None], on_redis_down: Callable[[], None],
                 on_ended: Callable[[str], Awaitable[None]], observe: Callable[[float], None] | None = None) -> None:
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
        self.cursor = 0                 # the last seq in the log

    async def run(self) -> None:
        sid = self.session_id
        try:
            await self.client.hset(keys.session(sid), mapping={
                "owner": self.node_id, "attached_node": self.node_id, "last_seq": 0, "created": time.time(),
                "api_key": self.api_key_id})
            await self.client.expire(keys.session(sid), self.ttl_s)
            while True:
                batch = await self.channel.log_batch(self.cursor)
                ended = batch[-1].type == "session.ended"
                t0 = time.perf_counter()
                res = await self.appender.append(sid, self.cursor, batch, self.ended_ttl_s if ended else self.ttl_s)
                if self.observe is not None:
                    self.observe(time.perf_counter() - t0)
                if res.lost:
                    log.warning("session %s: its event log is gone from Redis; it goes on on this node only", sid)
                    self.channel.ungate()
                    return
                if not res.ok:
                    log.warning("session %s: another node ended it in the log at seq %d (this node was taken "
                                "for lost); its copy here ends", sid, res.last_seq)
                    self.channel.fence()
                    self.on_fenced(sid)
                    return
                self.cursor = res.last_seq
                if ended:
                    await self.on_ended(sid)
                self.channel.commit(self.cursor)
                if ended:
                    return
        except REDIS_DOWN as e:
            log.warning("session %s: Redis unreachable (%s); it goes on on this node only", sid, e)
            self.channel.ungate()
            self.on_redis_down()
        except redis.exceptions.ResponseError as e:
            log.error("session %s: Redis refused the event log (%s); it goes on on this node only", sid, e)
            self.channel.ungate()
        except Exception:  # never leave the session's clients waiting on a log that stopped
            log.exception("session %s: the event log failed; it goes on on this node only", sid)
            self.channel.ungate()

