"""This node in a cluster (DESIGN §8): ties the lease, the event logs of the sessions it owns, its inbox
and the bridges to sessions that other nodes own (`remote.py`), and takes over those whose owner is gone
(`lost.py`). The session service sees it through its `ClusterHooks` (created / removed); the transports
through `find` / `bridge`.

Redis down: the node is `degraded`. Sessions it owns go on locally (their logs ungate their channels),
new sessions are local only, and it heals on the next lease beat that reaches Redis.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import socket
import time
import uuid
from typing import TYPE_CHECKING

from prometheus_client import Counter, Gauge, Histogram

from ..core.config import HubConfig, mask_url
from ..core.errors import ErrorCode, HubError, KeyQuotaError
from ..core.events import SessionStarted, parse_event
from ..engine.resume_point import resume_answer
from . import keys
from .append import LogAppender
from .bridge import BridgedSession
from .connect import redis_client
from .errors import REDIS_DOWN, ClusterUnavailable
from .inbox import Inbox
from .lease import Lease, NodeLoad
from .log import EventLog
from .lost import OwnerLoss
from .messages import InboxMessage
from .quota import KeyQuota, KeyRateLimit
from .remote import RemoteRecord, RemoteSessions
from .takeover import Claimer

if TYPE_CHECKING:
    from ..engine.service import SessionService
    from ..engine.session import Session

log = logging.getLogger(__name__)

REPLY_TTL_MS = 30_000  # an answer to a resume nobody took (its asker gave up) is gone after this
UNRESUMABLE = frozenset({"openai", "realtime"})  # wires without resume: their sessions are not logged


def default_node_id(host: str, port: int) -> str:
    """host:port; a node listening on every interface is named by its hostname (each container's own)."""
    if host in ("0.0.0.0", "::", ""):
        host = socket.gethostname()
    return f"{host}:{port}"


class ClusterNode:
    def __init__(self, config: HubConfig, service: SessionService) -> None:
        cc = config.cluster
        server = config.server
        self.config = config
        self.service = service
        self.node_id = cc.node_id or default_node_id(server.host, server.port)
        self.url = cc.advertise_url or f"http://{server.host}:{server.port}"
        self.block_ms = cc.bridge_block_ms
        self.max_message_bytes = config.limits.max_message_bytes
        lease_s = cc.lease_ms / 1000
        window = config.limits.resume_window_s
        self.ended_ttl_s = max(1, math.ceil(window))
        self.session_ttl_s = math.ceil(window + 2 * lease_s + 5)
        timeout = cc.connect_timeout_s
        self.client = redis_client(cc.redis_url, socket_timeout=timeout, connect_timeout=timeout)
        self.blocking = redis_client(cc.redis_url, socket_timeout=cc.bridge_block_ms / 1000 + timeout,
                                     connect_timeout=timeout)
        self.appender = LogAppender(self.client, cc.stream_maxlen)
        self.claimer = Claimer(self.client, cc.stream_maxlen)
        self.degraded = True   # until the first lease beat reaches Redis
        self.reachable = asyncio.Event()  # set while Redis answers (the logs of a gap rejoin on it)
        self.reached_at = 0.0  # monotonic time Redis answered again after a gap
        self._beaten = False   # a lease beat has been tried
        self.log_tasks: dict[str, asyncio.Task[None]] = {}   # session -> its event log writer
        self.logged: dict[str, asyncio.Event] = {}   # new session -> set once its log has answered (`in_cluster`)
        self.attachments: dict[str, dict[str, int]] = {}   # session -> bridge conn -> attachment
        self.lease_ms = cc.lease_ms
        self.quota = KeyQuota(self.client, timeout_s=timeout)
        self.rate = KeyRateLimit(self.client, timeout_s=timeout)
        self.quota_held: dict[str, str] = {}   # session -> API key id, counted in the key's quota
        self.lease = Lease(self.client, self.node_id, cc.lease_ms, self._load, self._active, self.session_ttl_s,
                           self._health, self._renew_quotas)
        self.inbox = Inbox(self.blocking, self.node_id, self._active, self, cc.bridge_block_ms, self._health,
                           now=self.client)
        self._tasks: set[asyncio.Task[None]] = set()
        self.bridges = 0   # clients of other nodes' sessions served here now
        r = service.metrics.registry
        self.m_up = Gauge("asrhub_cluster_up", "1 while this node reaches the cluster's Redis, 0 while degraded "
                          "(local-only)", registry=r)
        self.m_bridges = Gauge("asrhub_cluster_bridged_clients", "Clients of other nodes' sessions served here",
                               registry=r)
        self.m_bridges.set_function(lambda: self.bridges)
        self.m_fenced = Counter("asrhub_cluster_sessions_fenced", "Sessions of this node another node had ended "
                                "(this node was taken for lost)", registry=r)
        self.m_append = Histogram("asrhub_cluster_log_append_seconds", "One batch of events into a session's log",
                                  buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0), registry=r)
        self.remote = RemoteSessions(self)   # sessions other nodes own, served here
        self.lost = OwnerLoss(self, r)       # sessions whose owner is gone: taken over, or ended

    # -- lifecycle -------------------------------------------------------------------------------
    async def start(self) -> None:
        if not await self.lease.beat():
            log.warning("cluster: Redis at %s does not answer; node %s starts local-only (degraded)",
                        mask_url(self.config.cluster.redis_url), self.node_id)
        self._spawn(self.lease.run())
        self._spawn(self.inbox.run())
        log.info("cluster: node %s (%s) on %s", self.node_id, self.url, mask_url(self.config.cluster.redis_url))

    async def close(self) -> None:
        writing = [t for t in self.log_tasks.values() if not t.done()]
        if writing:  # the sessions' last events (session.ended on shutdown) into their logs
            await asyncio.wait(writing, timeout=1.0)
        for t in [*self._tasks, *self.log_tasks.values()]:
            t.cancel()
        for t in [*self._tasks, *self.log_tasks.values()]:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        await self.lease.release()
        for c in (self.client, self.blocking):
            with contextlib.suppress(Exception):
                await c.aclose()

    def _spawn(self, coro: object) -> asyncio.Task[None]:
        task: asyncio.Task[None] = asyncio.get_running_loop().create_task(coro)  # type: ignore[arg-type]
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _health(self, ok: bool) -> None:
        self.m_up.set(1 if ok else 0)
        first = not self._beaten
        self._beaten = True
        if ok == self.degraded and not (first and ok):
            log.warning("cluster: Redis %s; node %s %s", "answers again" if ok else "unreachable", self.node_id,
                        "joins the cluster again" if ok else "runs local-only (degraded)")
        if ok and self.degraded:
            self.reached_at = time.monotonic()
        self.degraded = not ok
        if ok:
            self.reachable.set()
        else:
            self.reachable.clear()

    def _load(self) -> NodeLoad:
        live = self.service.live_count()
        return NodeLoad(self.url, live, self.service.max_pending_lag(), live / self.config.limits.max_sessions)

    def _active(self) -> list[str]:
        """Sessions whose log this node writes now."""
        return [sid for sid in self.log_tasks if self._logging(sid)]

    def _logging(self, session_id: str) -> bool:
        task = self.log_tasks.get(session_id)
        return task is not None and not task.done()

    # -- ClusterHooks (the session service) --------------------------------------------------------
    def logs(self, transport: str) -> bool:
        return not self.degraded and transport not in UNRESUMABLE

    def created(self, session: Session, transport: str, api_key: str | None) -> None:
        if not session.channel.gated:
            return
        answered = self.logged[session.id] = asyncio.Event()

        def appended(seconds: float) -> None:  # the log's first append comes after its `sess:{id}`
            self.m_append.observe(seconds)
            answered.set()

        def redis_down() -> None:
            answered.set()
            self._health(False)

        ev_log = EventLog(self.client, self.appender, self.node_id, session.id, session.channel,
                          api_key or "", self.session_ttl_s, self.ended_ttl_s,
                          self._fenced, redis_down, self._release_ended, appended,
                          self.reachable, registered=session.channel.committed > 0,
                          start=session.start.model_dump_json(exclude={"resume", "type"}, exclude_none=True),
                          transport=transport)
        task = self.log_tasks[session.id] = asyncio.get_running_loop().create_task(ev_log.run())
        task.add_done_callback(lambda _: answered.set())  # (a log that gave up: local-only)
        self._spawn(self._wake())

    async def in_cluster(self, session_id: str) -> None:
        """Wait until a session just created here is in Redis (`sess:{id}` and its first events), so that
        any node finds it: what a transport waits for before it names the session to a client whose next
        request a balancer may send to another node (SSE's POST /v1/sessions). Not logged (degraded, or a
        wire without resume): at once. Redis not answering: at most the Redis timeout
        (`cluster.connect_timeout_s`), then the session is answered local-only (DESIGN §8 "Redis down")."""
        answered = self.logged.pop(session_id, None)
        if answered is None:
            return
        timeout = self.config.cluster.connect_timeout_s
        try:
            await asyncio.wait_for(answered.wait(), timeout)
        except TimeoutError:
            log.warning("session %s: not in Redis after %.1f s; answered all the same (other nodes may not "
                        "find it until its log is written)", session_id, timeout)

    def removed(self, session_id: str) -> None:
        self._release(session_id)
        self.attachments.pop(session_id, None)
        self.logged.pop(session_id, None)
        task = self.log_tasks.pop(session_id, None)
        if task is not None and not task.done():
            task.cancel()
        self._spawn(self._forget(session_id))

    def resumed(self, session_id: str) -> None:
        if self._logging(session_id) and not self.degraded:
            self._spawn(self._attached_here(session_id))

    async def _attached_here(self, session_id: str) -> None:
        with contextlib.suppress(*REDIS_DOWN):
            await self.client.hset(keys.session(session_id), "attached_node", self.node_id)

    async def _wake(self) -> None:
        with contextlib.suppress(*REDIS_DOWN):
            await self.client.xadd(keys.wake(self.node_id), {"w": 1}, maxlen=16, approximate=False)

    async def _forget(self, session_id: str) -> None:
        with contextlib.suppress(*REDIS_DOWN):
            await self.client.delete(keys.inbox(session_id))
        await self._wake()

    def _fenced(self, session_id: str) -> None:
        self.m_fenced.inc()
        self.service.end(session_id, "error")

    # -- admission across nodes (quota.py) ----------------------------------------------------------
    async def reserve(self, api_key: str | None, limit: int) -> str | None:
        """A new session's id, counted in the API key's quota across the cluster; None when there is
        nothing to count (no key) or Redis is down (local limits only). Refused: too_many_sessions."""
        if api_key is None or self.degraded:
            return None
        sid = uuid.uuid4().hex
        try:
            admitted = await self.quota.acquire(api_key, sid, limit, self.lease_ms)
        except ClusterUnavailable as e:
            log.warning("cluster: %s; admitting by this node's limits", e)
            self._health(False)
            return None
        if not admitted:
            raise KeyQuotaError(ErrorCode.too_many_sessions, f"this API key is at its limit of {limit} sessions "
                           "(across the cluster)", retry_after_s=5)
        self.quota_held[sid] = api_key
        return sid

    def _release(self, session_id: str) -> None:
        """The session ended (or was never started): its slot in the key's quota is free."""
        key = self.quota_held.pop(session_id, None)
        if key is not None:
            self._spawn(self._release_now(key, session_id))

    async def _release_ended(self, session_id: str) -> None:
        """session.ended is logged: the key's slot is free before the client hears of the end."""
        key = self.quota_held.pop(session_id, None)
        if key is not None:
            await self._release_now(key, session_id)

    async def _release_now(self, key: str, session_id: str) -> None:
        with contextlib.suppress(ClusterUnavailable):
            await self.quota.release(key, session_id)

    async def _count_again(self, key: str, session_id: str) -> None:
        with contextlib.suppress(ClusterUnavailable):
            await self.quota.acquire(key, session_id, 1 << 30, self.lease_ms)

    async def _renew_quotas(self) -> None:
        held = list(self.quota_held.items())
        if not held:
            return
        try:
            gone = await self.quota.renew([(k, sid) for sid, k in held], self.lease_ms)
            for entry in gone:  # (Redis restarted empty): counted again
                if entry.session_id in self.quota_held:
                    await self.quota.acquire(entry.key_id, entry.session_id, 1 << 30, self.lease_ms)
        except ClusterUnavailable:
            pass

    async def rate_hit(self, api_key: str, per_minute: int) -> None:
        """Requests per minute of an API key across the cluster (rate_limited past it)."""
        if self.degraded:
            return
        try:
            await self.rate.hit(api_key, per_minute)
        except ClusterUnavailable:
            self._health(False)

    # -- the owner's inbox ---------------------------------------------------------------------
    def apply(self, session_id: str, msg: InboxMessage) -> None:
        svc = self.service
        s = svc.plane(session_id)
        if s is None:
            if msg.reply:
                self._spawn(self._answer(msg.reply, ""))  # not here (any more): the asker goes on without
            return
        if msg.to and msg.to != self.node_id:
            return  # sent to the dead owner before a takeover: its client sends it again (from audio_from_ms)
        try:
            self._apply(session_id, msg)
        finally:
            if msg.reply:  # a resume: every earlier message of the inbox is applied, the timeline is as it is
                answer = resume_answer(svc, session_id)
                self._spawn(self._answer(msg.reply, answer.to_json() if answer is not None else ""))

    async def _answer(self, reply: str, answer: str) -> None:
        with contextlib.suppress(*REDIS_DOWN):
            pipe = self.client.pipeline(transaction=False)
            pipe.rpush(keys.reply(reply), answer)
            pipe.pexpire(keys.reply(reply), REPLY_TTL_MS)
            await pipe.execute()

    async def caught_up(self, session_id: str) -> None:
        """Before an HTTP + SSE request for a session held here is applied: what other nodes answered before
        it (in the session's inbox, not read yet) is applied first (`Inbox.catch_up`)."""
        if self._logging(session_id) and not self.degraded:
            await self.inbox.catch_up(session_id)

    async def resume_point(self, session_id: str) -> SessionStarted | None:
        """The answer to a resume of a session this node owns: once the inbox has applied every message
        written to it before this call (a relay that died had put its client's audio there), so the
        timeline counts it. Redis away, or the session not logged: the timeline as it is here now."""
        if not self._logging(session_id) or self.degraded:
            return resume_answer(self.service, session_id)
        token = uuid.uuid4().hex
        try:
            await self.client.xadd(keys.inbox(session_id), InboxMessage("mark", to=self.node_id,
                                                                        reply=token).fields())  # type: ignore[arg-type]
            got = await self.blocking.blpop([keys.reply(token)], timeout=self.block_ms / 1000)
        except REDIS_DOWN as e:
            log.info("session %s: resume answered from this node's timeline (Redis: %s)", session_id, e)
            got = None
        if got is None or not got[1]:
            return resume_answer(self.service, session_id)
        ev = parse_event(got[1])
        return ev if isinstance(ev, SessionStarted) else None

    def _apply(self, session_id: str, msg: InboxMessage) -> None:
        svc = self.service
        s = svc.plane(session_id)
        assert s is not None
        try:
            if msg.op == "attach":
                attachment = svc.attach(session_id)
                if attachment:
                    self.attachments.setdefault(session_id, {})[msg.conn] = attachment
                    s.channel.remote_readers += 1
            elif msg.op == "detach":
                attachment = self.attachments.get(session_id, {}).pop(msg.conn, 0)
                if attachment:
                    s.channel.remote_readers = max(0, s.channel.remote_readers - 1)
                    svc.detach(session_id, attachment)
            elif msg.op == "audio":
                svc.push_audio(session_id, msg.data)
            elif msg.op == "flush":
                svc.flush(session_id)
            elif msg.op == "stop":
                if not (msg.again and svc.is_closing(session_id)):  # (a stop repeated after a resume: quiet)
                    svc.stop(session_id)
            elif msg.op == "keepalive":
                svc.keepalive(session_id)
            elif msg.op == "abort":
                svc.abort(session_id)
            elif msg.op == "delivered":
                s.channel.mark_delivered(msg.seq)
            elif msg.op == "error":
                code = ErrorCode(msg.code) if msg.code in ErrorCode.__members__ else ErrorCode.internal
                svc.error(session_id, HubError(code, msg.message, fatal=msg.fatal))
        except HubError as e:
            svc.error(session_id, e)

    # -- sessions of other nodes (remote.py) and of lost owners (lost.py) ---------------------------
    async def find(self, session_id: str) -> RemoteRecord | None:
        return await self.remote.find(session_id)

    async def resume(self, session_id: str, last_seq: int | None, *, attach: bool = True) -> BridgedSession | None:
        """A client's resume of a session not held here: a bridge to its owner, or None when this node has
        taken it over for this resume (its owner's lease was gone): serve it from the local session."""
        return await self.remote.resume(session_id, last_seq, attach=attach)

    async def bridge(self, session_id: str, last_seq: int | None, *, attach: bool = True,
                     retake: bool = True) -> BridgedSession:
        """Serve here a session another node owns (`RemoteSessions.bridge`)."""
        return await self.remote.bridge(session_id, last_seq, attach=attach, retake=retake)

    async def audio_received(self, bridge: BridgedSession) -> int | None:
        return await self.remote.audio_received(bridge)

    async def held_audio_answer(self, bridge: BridgedSession) -> int | None:
        return await self.remote.held_audio_answer(bridge)

    async def lease_left_ms(self, owner: str) -> int:
        return await self.remote.lease_left_ms(owner)

    async def owner_alive(self, owner: str) -> bool:
        return await self.remote.owner_alive(owner)

    async def owner_lost(self, session_id: str, owner: str) -> None:
        await self.lost.owner_lost(session_id, owner)

    async def claim_settled(self, session_id: str) -> bool:
        return await self.lost.claim_settled(session_id)

    async def take_over(self, session_id: str, owner: str) -> bool:
        return await self.lost.take_over(session_id, owner)

    async def end_lost(self, session_id: str, owner: str) -> None:
        await self.lost.end_lost(session_id, owner)

    def quota_taken(self, session_id: str, api_key: str) -> None:
        """A session taken over here: its key's slot in its quota is this node's to renew now."""
        self.quota_held[session_id] = api_key
        self._spawn(self._count_again(api_key, session_id))
