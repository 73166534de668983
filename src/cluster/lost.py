"""A session whose owner is gone (DESIGN §8 "Owner death → takeover"): this node claims it
(`takeover.py`) and goes on with it here, or, where it cannot be taken over, ends it in its log
(`error{node_lost}`, `session.ended{error}`). A claim under way is known (`claiming`), so that whatever
reaches the node in the moment Redis names it the owner, before the session is open here, waits for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import TYPE_CHECKING, Protocol

from prometheus_client import CollectorRegistry, Counter

from ..core.errors import ErrorCode, HubError
from ..core.events import ErrorEvent, SessionEnded, parse_event
from . import keys, wire
from .errors import REDIS_DOWN
from .takeover import ClaimRefused, read_takeover

if TYPE_CHECKING:
    import redis.asyncio as aioredis

    from ..core.config import HubConfig
    from ..engine.service import SessionService
    from .append import LogAppender
    from .takeover import Claimer

log = logging.getLogger(__name__)


class LossHost(Protocol):
    """What a takeover needs of its node (read at call time)."""

    config: HubConfig
    service: SessionService
    node_id: str
    client: aioredis.Redis
    claimer: Claimer
    appender: LogAppender
    session_ttl_s: int
    ended_ttl_s: int

    def quota_taken(self, session_id: str, api_key: str) -> None:
        """The key's slot in its quota is this node's to renew now."""
        ...


class OwnerLoss:
    def __init__(self, host: LossHost, registry: CollectorRegistry) -> None:
        self.host = host
        self.claiming: dict[str, asyncio.Event] = {}  # session -> set when this node's claim of it has settled
        self.m_lost = Counter("asrhub_cluster_sessions_lost", "Sessions this node ended for a lost owner "
                              "(node_lost)", registry=registry)
        self.m_taken = Counter("asrhub_cluster_sessions_taken_over", "Sessions of a dead node this node took over "
                               "(session.migrated)", registry=registry)

    async def owner_lost(self, session_id: str, owner: str) -> None:
        """The owner's lease is gone: take the session over, or where that cannot be, end it (node_lost)."""
        if not await self.take_over(session_id, owner):
            await self.end_lost(session_id, owner)

    async def claim_settled(self, session_id: str) -> bool:
        """Wait for this node's claim of the session, when one is under way (True): Redis may name this node
        its owner before the session is open here."""
        claim = self.claiming.get(session_id)
        if claim is None:
            return False
        await claim.wait()
        return True

    async def take_over(self, session_id: str, owner: str) -> bool:
        """Claim the session of a dead owner and go on with it here (DESIGN §8 "Owner death → takeover").
        True when it has a live owner again (this node, or a node whose claim came first); False when it
        cannot be taken over (takeover off, its start options not kept, ended, Redis away)."""
        if not self.host.config.cluster.takeover:
            return False
        if session_id in self.claiming:  # a claim of this node's is under way: its answer
            await self.claiming[session_id].wait()
            return self.host.service.holds(session_id)
        self.claiming[session_id] = claim = asyncio.Event()
        try:
            return await self._claim(session_id, owner)
        finally:
            del self.claiming[session_id]
            claim.set()

    async def _claim(self, session_id: str, owner: str) -> bool:
        h = self.host
        for _ in range(3):
            try:
                point = await read_takeover(h.client, session_id, h.config.limits.replay_audio_s)
                if point.ended or point.start is None:
                    log.info("session %s: owner %s lost; not taken over (%s)", session_id, owner,
                             "it has ended" if point.ended else "its start options are not kept")
                    return False
                res = await h.claimer.claim(session_id, owner, h.node_id, point, h.session_ttl_s)
            except REDIS_DOWN as e:
                log.warning("session %s: owner %s lost, and Redis unreachable for a takeover: %s", session_id, owner, e)
                return False
            if res is ClaimRefused.moved_on:
                continue
            if isinstance(res, ClaimRefused):
                log.info("session %s: owner %s lost; the claim was refused (%s)", session_id, owner, res.name)
                return res in (ClaimRefused.taken, ClaimRefused.owner_back)
            try:
                h.service.take_over(point.start, point.transport or "websocket", point.api_key or None, res,
                                    point.utterances, point.tail, point.promised)
            except HubError as e:
                log.warning("session %s: claimed from %s, but it cannot go on here: %s", session_id, owner, e)
                await self._end_in_log(session_id, res.seq, e)
                return True
            if point.api_key:
                h.quota_taken(session_id, point.api_key)
            self.m_taken.inc()
            log.warning("session %s: its node %s is gone (lease expired); taken over here at seq %d, audio from "
                        "%d ms", session_id, owner, res.seq, res.audio_from_ms)
            return True
        return False

    async def _end_in_log(self, session_id: str, last: int, err: HubError) -> None:
        now = time.time()
        events = [ErrorEvent(session_id=session_id, seq=last + 1, ts=now, code=err.code.value, message=err.message,
                             fatal=True), SessionEnded(session_id=session_id, seq=last + 2, ts=now, reason="error")]
        with contextlib.suppress(*REDIS_DOWN):
            await self.host.appender.append(session_id, last, events, self.host.ended_ttl_s,
                                            writer=self.host.node_id)

    async def end_lost(self, session_id: str, owner: str) -> None:
        """The owner's lease is gone: end the session in its log (`node_lost`), unless it has ended or
        the owner wrote meanwhile. The log's writer of a returning owner is then refused (fenced)."""
        h = self.host
        for _ in range(3):
            try:
                top = wire.entries(await h.client.xrevrange(keys.events(session_id), "+", "-", count=1))
                last = wire.seq_of(top[0][0]) if top else 0
                if top and parse_event(top[0][1][b"event"]).type == "session.ended":
                    return
                now = time.time()
                err = ErrorEvent(session_id=session_id, seq=last + 1, ts=now, code=ErrorCode.node_lost.value,
                                 message=f"the node computing this session ({owner}) is gone", fatal=True)
                end = SessionEnded(session_id=session_id, seq=last + 2, ts=now, reason="error")
                res = await h.appender.append(session_id, last, [err, end], h.ended_ttl_s)
            except REDIS_DOWN as e:
                log.warning("session %s: owner %s lost and Redis unreachable: %s", session_id, owner, e)
                return
            if res.ok:
                self.m_lost.inc()
                log.warning("session %s: its node %s is gone (lease expired); ended with node_lost at seq %d",
                            session_id, owner, last + 1)
                return
            if res.lost:
                return
