"""SessionService: the one facade every transport calls (DESIGN §2).

Commands (start, audio, flush, stop, abort, detach/resume) are gated by selectors over the store's
sessions slice, the one registry of sessions: which exist, their lifecycle, provider, transport and key.
The service executes: it runs each session's data plane (`Session`: pipeline, provider stream, ring buffer,
channel, timers; looked up by the id of a session the store holds) and reports what happens as actions.
The ports the store's effects use are engine/streams.py (streams, channels) and engine/failover.py.

Beside it: engine/opening.py (what a session opens with), engine/feeding.py (the pipeline's items as
actions), engine/timers.py (idle, a late final), engine/stopping.py (finishing, the
shutdown drain), engine/retention.py (attachment, the resume window,
forgetting), engine/hooks.py (what a cluster node is told).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator, Coroutine, Iterable, Sequence
from typing import Any

from pystorex import Action

from ..core.audio import HUB_RATE, ms_to_samples
from ..core.channel import EventChannel
from ..core.commands import StartSession
from ..core.config import HubConfig
from ..core.errors import ClientError, ErrorCode, HubError, SessionStateError
from ..core.events import Event, SessionMigrated
from ..core.language import parse_language
from ..core.validation import validate_audio_spec, validate_idle_timeout
from ..providers.base import Provider, ProviderHealth, ProviderStream, StreamResult
from ..providers.checks import validate_start
from ..providers.registry import ProviderSet
from ..store.hub.selectors import select_draining
from ..store.providers import actions as PA
from ..store.providers.selectors import select_status
from ..store.root import build_store
from ..store.sessions import actions as A
from ..store.sessions.selectors import (
    select_is_live,
    select_is_open,
    select_live_count,
    select_live_sessions,
    select_session,
    select_state,
)
from ..store.sessions.state import SessionRecord, SessionState
from . import stopping
from .admission import Admission
from .continued import ContinuedChannel
from .failover import Failover
from .feeding import Feeding
from .hooks import ClusterHooks
from .metrics import HubMetrics, MetricsEffects
from .opening import new_plane, pick_provider
from .retention import Retention
from .routing import LanguageRouting
from .session import Session
from .streams import Streams, error_actions
from .timers import arm_final_timer, arm_idle

log = logging.getLogger(__name__)
Actions = Sequence[Action[Any]]

__all__ = ["ClusterHooks", "SessionService"]


class SessionService:
    def __init__(self, config: HubConfig, providers: ProviderSet, metrics: HubMetrics | None = None) -> None:
        self.config = config
        self.providers = providers
        self.metrics = metrics or HubMetrics()
        # the data plane of each session the store holds, by id: nothing the store's record says (see plane())
        self._planes: dict[str, Session] = {}
        self.failover = Failover(self)
        self.streams = Streams(self)
        self.routing = LanguageRouting(self)
        self.store = build_store(self.streams, self.failover, self.streams,
                                 MetricsEffects(self.metrics, lambda: self.state), routing=self.routing)
        providers.status_of = lambda p: select_status(self.state, p.name)  # the store owns provider health
        self.admission = Admission(self)
        self.feeding = Feeding(self)
        self.retention = Retention(self, self._remove)
        self.cluster: ClusterHooks | None = None   # set by the hub when cluster.redis_url is set

    # -- lifecycle of the service ----------------------------------------------------------
    async def start(self) -> None:
        return None

    async def close(self) -> None:
        for sid in select_live_sessions(self.state):
            self.end(sid, "shutdown")
        self.retention.close()
        await self.failover.close()

    def dispatch(self, action: Action[Any]) -> None:
        self.store.dispatch(action)

    @property
    def state(self) -> Any:
        return self.store.state

    def report_health(self, providers: Iterable[Provider]) -> None:
        """Put the providers' load results in the store, and let every later report of theirs (from
        any thread) reach it as `[Provider] Status Changed`, on the loop."""
        loop = asyncio.get_running_loop()

        def on_health(p: Provider, h: ProviderHealth) -> None:
            loop.call_soon_threadsafe(self.dispatch, PA.status_changed(PA.StatusChanged(p.name, h.status, h.reason)))

        for p in providers:
            h = p.health()
            self.dispatch(PA.status_changed(PA.StatusChanged(p.name, h.status, h.reason)))
            p.on_health = on_health

    # -- what the store says -----------------------------------------------------------------
    def live_count(self, api_key: str | None = None) -> int:
        return select_live_count(self.state, api_key)

    def is_live(self, session_id: str) -> bool:
        """Not ended yet (the store's view)."""
        return select_is_live(self.state, session_id)

    def is_open(self, session_id: str) -> bool:
        """Takes audio, flush and stop now (listening or speaking)."""
        return select_is_open(self.state, session_id)

    def holds(self, session_id: str) -> bool:
        """The session is held here: the store has its record (live, or ended and still resumable)."""
        return select_session(self.state, session_id) is not None

    def plane(self, session_id: str) -> Session | None:
        """The data plane of a session the store holds (None: it holds no such session)."""
        return self._planes.get(session_id) if self.holds(session_id) else None

    def is_closing(self, session_id: str) -> bool:
        """Stopping (finalizing) or ended: it will never take audio again."""
        return select_state(self.state, session_id) in (SessionState.finalizing, SessionState.ended, None)

    def max_pending_lag(self) -> float:
        return self.admission.max_pending_lag()

    # -- opening ---------------------------------------------------------------------------
    def start_session(self, cmd: StartSession, transport: str, api_key: str | None = None,
                      session_id: str | None = None) -> Session:
        """Open a session (or resume one held here). `session_id`: the id to give it (the caller has
        already reserved it, e.g. in the cluster's quotas); default a new one."""
        limits = self.config.limits
        validate_audio_spec(cmd.audio, limits)  # a resume's are ignored, but never taken when absurd
        validate_idle_timeout(cmd.idle_timeout_s, limits)
        if cmd.resume is not None:
            return self.resume(cmd.resume.session_id, cmd.resume.last_seq)
        if select_draining(self.state):
            raise HubError(ErrorCode.too_many_sessions, "the hub is shutting down; not admitting new sessions")
        self.admission.admit(api_key)
        if cmd.language:
            parse_language(cmd.language)  # a malformed tag is the client's error, whatever the routing
        provider, detect = pick_provider(self.providers, cmd)
        validate_start(cmd, provider, limits)  # the checks every entry point makes (core.validation)
        sid = session_id or uuid.uuid4().hex
        logged = self.cluster is not None and self.cluster.logs(transport)
        session = new_plane(sid, cmd, self.config, EventChannel(sid, limits.max_events_buffered, gated=logged))
        self._open_plane(session, transport, api_key, provider, detect)
        return session

    def take_over(self, cmd: StartSession, transport: str, api_key: str | None, migrated: SessionMigrated,
                  utterances: int, tail: Sequence[Event] = (), promised: str = "") -> Session:
        """Open here, under its id, a session another node computed until it died (DESIGN §8 "Owner death
        → takeover"): its start options as kept in the cluster, its seqs after the claim's
        `session.migrated`, its audio timeline from `audio_from_ms` and its utterance numbers after
        `utterances`; `tail`: the log's newest events before the claim (replayed by a resume here); `promised`:
        the stable_text the open utterance was promised (the utterance decoded again continues it). No client
        is attached yet: the resume window runs until one is."""
        if select_draining(self.state):
            raise HubError(ErrorCode.too_many_sessions, "the hub is shutting down; not taking sessions over")
        self.admission.admit(api_key, lag=False)  # a moved session is no new load: refused, it would end
        provider, detect = pick_provider(self.providers, cmd)
        channel = ContinuedChannel(migrated, self.config.limits.max_events_buffered, tail)
        session = new_plane(migrated.session_id, cmd, self.config, channel)
        session.continue_at(ms_to_samples(migrated.audio_from_ms), utterances, promised)
        if self._open_plane(session, transport, api_key, provider, detect):
            self.detach(session.id)
        return session

    def _open_plane(self, s: Session, transport: str, api_key: str | None, provider: Provider,
                    detect: bool) -> bool:
        """Hold the session's data plane here and create its record (`[Session] Created`: its stream
        opens); its idle timer runs once it is live. Whether it is."""
        s.last_activity = asyncio.get_running_loop().time()
        self._planes[s.id] = s
        assert s.pipeline is not None
        s.pipeline.on_late = lambda items: self.feeding.feed_late(s, items)  # the turn model's decisions
        if self.cluster is not None:
            self.cluster.created(s, transport, api_key)
        self.dispatch(A.created(A.Created(s.id, provider.name, transport, api_key, time.time(), detect)))
        if not self.is_live(s.id):
            return False
        arm_idle(self, s)
        return True

    # -- commands --------------------------------------------------------------------------
    def get(self, session_id: str) -> Session:
        s = self.plane(session_id)
        if s is None:
            raise ClientError(ErrorCode.session_not_found, f"no session '{session_id}'")
        return s

    def _open(self, session_id: str) -> tuple[Session, SessionRecord]:
        """The session and its record, if it takes commands now (listening or speaking, says the store)."""
        s = self.get(session_id)
        rec = select_session(self.state, session_id)
        if rec is None or rec.state == SessionState.ended:
            raise SessionStateError(ErrorCode.invalid_command, f"session '{session_id}' has ended")
        if rec.state == SessionState.finalizing:
            raise SessionStateError(ErrorCode.invalid_command,
                                    f"session '{session_id}' is stopping; no more audio or commands")
        if rec.state == SessionState.created:
            raise SessionStateError(ErrorCode.invalid_command, f"session '{session_id}' has not started yet")
        return s, rec

    def push_audio(self, session_id: str, data: bytes) -> None:
        s, rec = self._open(session_id)
        if len(data) > self.config.limits.max_message_bytes:
            raise ClientError(ErrorCode.payload_too_large, f"audio message of {len(data)} bytes exceeds the limit of "
                              f"{self.config.limits.max_message_bytes}")
        if not data:
            return
        s.last_activity = asyncio.get_running_loop().time()
        s.audio_bytes += len(data)
        assert s.pipeline is not None
        before = s.pipeline.offset
        items = s.pipeline.push(data)  # HubError(invalid_audio) propagates to the transport
        self.metrics.audio_seconds.labels(rec.transport).inc((s.pipeline.offset - before) / HUB_RATE)
        self.feeding.feed(s, items)
        if s.audio_samples > self.config.limits.max_session_s * HUB_RATE:
            self.error(s.id, HubError(ErrorCode.payload_too_large, "session reached its maximum length "
                                      f"of {self.config.limits.max_session_s:.0f} s", fatal=True))

    def flush(self, session_id: str) -> None:
        s = self._open(session_id)[0]
        s.last_activity = asyncio.get_running_loop().time()
        assert s.pipeline is not None
        self.feeding.feed(s, s.pipeline.flush())

    def keepalive(self, session_id: str) -> None:
        """No audio for a while; the session stays open (resets its idle timer)."""
        self._open(session_id)[0].last_activity = asyncio.get_running_loop().time()

    def stop(self, session_id: str, reason: str = "stop") -> None:
        s = self._open(session_id)[0]
        self.dispatch(A.stop_requested(A.SessionRef(s.id)))
        if s.idle_timer is not None:
            s.idle_timer.cancel()
            s.idle_timer = None
        assert s.pipeline is not None
        deciding = s.pipeline.turn.decided() if s.pipeline.turn is not None else None
        if deciding is not None:  # turn mode: the received audio's decision first, then the close (stopping.py)
            self.spawn(s, stopping.close_after(self, s, deciding, reason))
        elif self.close_pipeline(s):
            self.spawn(s, stopping.finish(self, s, reason))  # then it ends

    def close_pipeline(self, s: Session) -> bool:
        """End of the session's audio (`stop`): the pipeline's last items (its open utterance ended) into its
        stream. Whether the session is still live."""
        assert s.pipeline is not None
        try:
            items = s.pipeline.close()
        except HubError as e:
            self.error(s.id, e)  # a fatal error ends the session (and releases its pipeline) right here
            items = s.pipeline.flush() if s.pipeline is not None and self.is_live(s.id) else []
        if not self.is_live(s.id):
            return False
        self.feeding.feed(s, items)
        return True

    async def drain(self, grace_s: float) -> None:
        """Shutdown: finalise every open utterance, then end each session with reason "shutdown";
        whatever is not done within `grace_s` is ended as it is (engine/stopping.py)."""
        await stopping.drain(self, grace_s)

    def abort(self, session_id: str) -> None:
        """DELETE: end now, no finalisation. The session is gone at once for every later request (resume,
        events, audio, commands: `session_not_found`); readers already attached still get `session.ended`."""
        s = self.get(session_id)
        self.end(s.id, "client_gone")
        self.retention.delete(s.id)

    def check_not_deleted(self, session_id: str) -> None:
        self.retention.check_not_deleted(session_id)

    def events(self, session_id: str, after_seq: int = 0) -> AsyncIterator[Event]:
        return self.get(session_id).channel.subscribe(after_seq)

    # -- detach / resume (engine/retention.py) -----------------------------------------------
    def attachment(self, session_id: str) -> int:
        """Which client connection the session is on now (each resume makes a new one)."""
        return self.retention.attachment(session_id)

    def detach(self, session_id: str, attachment: int | None = None) -> None:
        """The client of `attachment` (default: the current one) went away: the resume window runs."""
        self.retention.detach(session_id, attachment)

    def resume(self, session_id: str, last_seq: int) -> Session:
        return self.retention.resume(session_id, last_seq)

    def attach(self, session_id: str) -> int:
        """A client takes the session over: its resume window stops. The new attachment (0: ended)."""
        return self.retention.attach(session_id)

    # -- the ports' host -------------------------------------------------------------------
    def arm_final_timer(self, s: Session, uid: str) -> None:
        arm_final_timer(self, s, uid)

    def error(self, session_id: str, err: HubError) -> None:
        if not self.is_live(session_id):
            return
        for action in error_actions(session_id, err):
            self.dispatch(action)

    def new_stream(self, s: Session, provider: Provider) -> ProviderStream:
        return self.streams.new_stream(s, provider)

    def move(self, s: Session, provider: Provider) -> None:
        """Put the session on a new stream of `provider`, replaying what the old one owed (core.failover)."""
        self.failover.move(s, provider)

    def final_actions(self, s: Session, r: StreamResult) -> Actions:
        return self.streams.final_actions(s, r)

    def end(self, session_id: str, reason: str) -> None:
        """End the session now (through the store: `[Session] End Requested`)."""
        if self.is_live(session_id):
            self.dispatch(A.end_requested(A.EndRequested(session_id, reason)))

    def forget_later(self, session_id: str) -> None:
        self.retention.forget_later(session_id)

    def _remove(self, session_id: str) -> None:
        """Forget the session (its time after the end is up): its data plane, then its record."""
        s = self._planes.pop(session_id, None)
        if s is not None:
            for t in list(s.tasks):
                t.cancel()
            if self.cluster is not None:
                self.cluster.removed(session_id)
        self.dispatch(A.removed(A.SessionRef(session_id)))

    def spawn(self, s: Session, coro: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        s.tasks.add(task)
        task.add_done_callback(s.tasks.discard)
