"""SessionService: the one facade every transport calls (DESIGN §2).

Commands (start, audio, flush, stop, abort, detach/resume) are gated by selectors over the store's
sessions slice, the one registry of sessions: which exist, their lifecycle, provider, transport and key.
The service executes: it runs each session's data plane (`Session`: pipeline, provider stream, ring buffer,
channel, timers; looked up by the id of a session the store holds) and reports what happens as actions.
The ports the store's effects use are engine/streams.py (streams, channels) and engine/failover.py.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator, Coroutine, Iterable, Sequence
from typing import Any, Protocol

from pystorex import Action

from ..core.audio import HUB_RATE, ms_to_samples, samples_to_ms
from ..core.channel import EventChannel
from ..core.commands import StartSession
from ..core.config import HubConfig
from ..core.errors import ClientError, ErrorCode, HubError, SessionStateError
from ..core.events import (
    Event,
    SessionMigrated,
    SpeechEnded,
    SpeechStarted,
    WakewordDetected,
)
from ..core.language import parse_language
from ..core.validation import validate_audio_spec, validate_idle_timeout
from ..operators.base import SpeechEnd, SpeechStart, WakeWord
from ..operators.pipeline import Pipeline, build_spec
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
    select_sessions,
    select_state,
)
from ..store.sessions.state import SessionRecord, SessionState
from .admission import Admission
from .continued import ContinuedChannel
from .failover import Failover
from .metrics import HubMetrics, MetricsEffects
from .routing import LanguageRouting
from .session import Session
from .streams import Streams, error_actions

log = logging.getLogger(__name__)
Actions = Sequence[Action[Any]]


class ClusterHooks(Protocol):
    """What the service tells a cluster node (src/cluster/node.py; DESIGN §8) of its sessions."""

    def logs(self, transport: str) -> bool:
        """A new session of `transport` is logged to the cluster (resumable on any node); not when Redis
        is down (it is local only), nor on wires that cannot resume (OpenAI, Realtime)."""
        ...

    def created(self, session: Session, transport: str, api_key: str | None) -> None: ...

    def removed(self, session_id: str) -> None: ...

    def resumed(self, session_id: str) -> None:
        """A client resumed the session on this node (its own)."""
        ...


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
        self._removals: dict[str, asyncio.TimerHandle] = {}   # ended or detached: when to forget it
        self._deleted: set[str] = set()  # DELETEd: gone for every client request, until forgotten
        self.cluster: ClusterHooks | None = None   # set by the hub when cluster.redis_url is set

    # -- lifecycle of the service ----------------------------------------------------------
    async def start(self) -> None:
        return None

    async def close(self) -> None:
        for sid in select_live_sessions(self.state):
            self.end(sid, "shutdown")
        for t in self._removals.values():
            t.cancel()
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

    # -- commands --------------------------------------------------------------------------
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
        # no provider and no language (or auto): routed by the language of its speech (core.routing); it
        # starts where the default provider's language routes, so partials flow at once
        detect = self.providers.detects(cmd.provider, cmd.language, cmd.task)
        default = self.providers.providers.get(self.providers.config.default)
        language = (default.language if default is not None else None) if detect else cmd.language
        provider = self.providers.for_request(cmd.provider, language, cmd.task)  # providers.routes
        validate_start(cmd, provider, limits)  # the checks every entry point makes (core.validation)
        sid = session_id or uuid.uuid4().hex
        pipeline = Pipeline(build_spec(cmd.audio, cmd.vad, self.config.pipeline, cmd.wakeword, cmd.record,
                                       cmd.turn), sid)
        logged = self.cluster is not None and self.cluster.logs(transport)
        session = Session(sid, cmd, pipeline, EventChannel(sid, limits.max_events_buffered, gated=logged),
                          limits.max_session_buffer_s)
        session.last_activity = asyncio.get_running_loop().time()
        self._planes[sid] = session
        pipeline.on_late = lambda items: self._feed_late(session, items)  # the turn model's decisions
        if self.cluster is not None:
            self.cluster.created(session, transport, api_key)
        self.dispatch(A.created(A.Created(sid, provider.name, transport, api_key, time.time(), detect)))
        if self.is_live(sid):
            self._arm_idle(session)
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
        limits = self.config.limits
        detect = self.providers.detects(cmd.provider, cmd.language, cmd.task)
        default = self.providers.providers.get(self.providers.config.default)
        language = (default.language if default is not None else None) if detect else cmd.language
        provider = self.providers.for_request(cmd.provider, language, cmd.task)
        sid = migrated.session_id
        pipeline = Pipeline(build_spec(cmd.audio, cmd.vad, self.config.pipeline, cmd.wakeword, cmd.record,
                                       cmd.turn), sid)
        session = Session(sid, cmd, pipeline, ContinuedChannel(migrated, limits.max_events_buffered, tail),
                          limits.max_session_buffer_s)
        session.continue_at(ms_to_samples(migrated.audio_from_ms), utterances, promised)
        session.last_activity = asyncio.get_running_loop().time()
        self._planes[sid] = session
        pipeline.on_late = lambda items: self._feed_late(session, items)
        if self.cluster is not None:
            self.cluster.created(session, transport, api_key)
        self.dispatch(A.created(A.Created(sid, provider.name, transport, api_key, time.time(), detect)))
        if self.is_live(sid):
            self._arm_idle(session)
            self.detach(sid)
        return session

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
        self._feed(s, items)
        if s.audio_samples > self.config.limits.max_session_s * HUB_RATE:
            self.error(s.id, HubError(ErrorCode.payload_too_large, "session reached its maximum length "
                                      f"of {self.config.limits.max_session_s:.0f} s", fatal=True))

    def flush(self, session_id: str) -> None:
        s = self._open(session_id)[0]
        s.last_activity = asyncio.get_running_loop().time()
        assert s.pipeline is not None
        self._feed(s, s.pipeline.flush())

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
        try:
            items = s.pipeline.close()
        except HubError as e:
            self.error(s.id, e)  # a fatal error ends the session (and releases its pipeline) right here
            items = s.pipeline.flush() if s.pipeline is not None and self.is_live(s.id) else []
        if not self.is_live(s.id):
            return
        self._feed(s, items)
        self.spawn(s, self._finish(s, reason))

    async def drain(self, grace_s: float) -> None:
        """Shutdown: finalise every open utterance, then end each session with reason "shutdown";
        whatever is not done within `grace_s` is ended as it is."""
        for sid in select_live_sessions(self.state):
            if select_state(self.state, sid) == SessionState.finalizing:
                continue
            try:
                self.stop(sid, "shutdown")
            except HubError:
                self.end(sid, "shutdown")
        tasks = [t for sid in select_sessions(self.state) if (s := self.plane(sid)) is not None for t in s.tasks]
        if tasks:
            await asyncio.wait(tasks, timeout=grace_s)
        for sid in select_live_sessions(self.state):
            self.end(sid, "shutdown")

    def abort(self, session_id: str) -> None:
        """DELETE: end now, no finalisation. The session is gone at once for every later request (resume,
        events, audio, commands: `session_not_found`); readers already attached still get `session.ended`."""
        s = self.get(session_id)
        self.end(s.id, "client_gone")
        self._deleted.add(s.id)

    def check_not_deleted(self, session_id: str) -> None:
        if session_id in self._deleted:
            raise ClientError(ErrorCode.session_not_found, f"no session '{session_id}' (it was deleted)")

    async def _finish(self, s: Session, reason: str) -> None:
        """After `stop`: every stream the session has (it may move on failover) has delivered what it
        was asked for, and every awaited final has come or was given up (each has its deadline)."""
        while self.is_live(s.id):
            stream = s.stream
            if stream is not None:
                try:
                    await asyncio.wait_for(stream.drain(), self.config.providers.timeout_s)
                except TimeoutError:
                    pass  # the late finals' own timers move the session or give them up
            await s.settled.wait()
            if s.stream is stream:
                break
        self.end(s.id, reason)

    # -- detach / resume -------------------------------------------------------------------
    def attachment(self, session_id: str) -> int:
        """Which client connection the session is on now (each resume makes a new one)."""
        rec = select_session(self.state, session_id)
        return rec.attachment if rec is not None else 0

    def detach(self, session_id: str, attachment: int | None = None) -> None:
        """The client of `attachment` (default: the current one) went away. The session waits
        `resume_window_s` for a resume; a connection that a resume has replaced detaches nothing."""
        rec = select_session(self.state, session_id)
        if rec is None or not rec.live:
            return
        if attachment is not None and attachment != rec.attachment:
            return
        self.dispatch(A.detached(A.Detached(session_id, rec.attachment)))
        window = self.config.limits.resume_window_s
        if window <= 0 or rec.state == SessionState.finalizing:
            if rec.state != SessionState.finalizing:
                self.end(session_id, "client_gone")
            return
        self._schedule(session_id, window, self._detach_expired)

    def _detach_expired(self, session_id: str) -> None:
        self._removals.pop(session_id, None)
        rec = select_session(self.state, session_id)
        if rec is not None and not rec.attached:
            self.end(session_id, "client_gone")

    def resume(self, session_id: str, last_seq: int) -> Session:
        s = self.plane(session_id)
        if s is None:
            raise ClientError(ErrorCode.session_not_found, f"no session '{session_id}' to resume (expired or unknown)")
        self.check_not_deleted(session_id)
        if last_seq > s.channel.last_seq or not s.channel.can_replay(last_seq):
            raise SessionStateError(ErrorCode.invalid_command, f"cannot resume from seq {last_seq}: the hub holds events "
                              f"up to {s.channel.last_seq}")
        if self.attach(session_id) and self.cluster is not None:
            self.cluster.resumed(session_id)
        return s

    def attach(self, session_id: str) -> int:
        """A client (here, or bridged from another node) takes the session over: its resume window stops.
        The new attachment; 0 when the session has ended (its events can still be replayed)."""
        s = self.plane(session_id)
        if s is None or not self.is_live(session_id):
            return 0
        t = self._removals.pop(session_id, None)
        if t:
            t.cancel()
        self.dispatch(A.attached(A.SessionRef(session_id)))
        s.last_activity = asyncio.get_running_loop().time()
        return self.attachment(session_id)

    def events(self, session_id: str, after_seq: int = 0) -> AsyncIterator[Event]:
        return self.get(session_id).channel.subscribe(after_seq)

    # -- data plane -> control plane -------------------------------------------------------
    def _feed(self, s: Session, items: list[Any]) -> None:
        def marker(item: SpeechStart | SpeechEnd, uid: str) -> None:
            if isinstance(item, SpeechStart):
                ev: Event = SpeechStarted(session_id=s.id, offset_ms=samples_to_ms(item.offset))
                self.dispatch(A.speech_edge(A.SpeechEdge(s.id, ev, True, uid)))
                rec = select_session(self.state, s.id)
                due = self.routing.due_at_start(s, rec, uid, item.offset) if rec is not None else None
                if due is not None:
                    self.dispatch(due)
            else:
                self.arm_final_timer(s, uid)
                ev = SpeechEnded(session_id=s.id, offset_ms=samples_to_ms(item.offset), reason=item.reason,
                                 turn_probability=None if item.turn_probability is None
                                 else round(item.turn_probability, 4))
                self.dispatch(A.speech_edge(A.SpeechEdge(s.id, ev, False, uid)))
                self._request_detection(s, (uid, s.pending[uid][0], item.offset) if uid in s.pending else None)

        for item in items:
            if isinstance(item, WakeWord):  # ahead of the utterance it opens
                ev = WakewordDetected(session_id=s.id, phrase=item.phrase, offset_ms=samples_to_ms(item.offset))
                self.dispatch(A.wakeword_detected(A.WakewordDetected(s.id, ev)))
        s.feed(items, marker)
        self._request_detection(s)

    def _request_detection(self, s: Session, ended: tuple[str, int, int] | None = None) -> None:
        """The due utterance's language ID, once it has enough audio or has `ended` (id, start, end): asked
        before the stream is told the utterance ended, so its final is held for the answer."""
        rec = select_session(self.state, s.id)
        action = self.routing.request(s, rec, ended) if rec is not None and rec.detect_due is not None else None
        if action is not None:
            self.dispatch(action)

    def _feed_late(self, s: Session, items: list[Any]) -> None:
        """Markers the pipeline decided outside a push (the turn model answered), while the session is open."""
        if s.pipeline is not None and self.is_open(s.id):
            self._feed(s, items)

    def arm_final_timer(self, s: Session, uid: str) -> None:
        """The utterance's final is due within providers.timeout_s; a timer reports it late."""
        old = s.final_timers.pop(uid, None)
        if old is not None:
            old.cancel()
        s.final_timers[uid] = asyncio.get_running_loop().call_later(
            self.config.providers.timeout_s, self.dispatch, A.final_timed_out(A.UtteranceRef(s.id, uid)))

    def _arm_idle(self, s: Session) -> None:
        """One timer per session, re-armed for the next deadline when audio came meanwhile; the
        session's own idle_timeout_s (validated: at most limits.idle_timeout_s) when it set one."""
        timeout = s.start.idle_timeout_s or self.config.limits.idle_timeout_s
        loop = asyncio.get_running_loop()

        def check() -> None:
            s.idle_timer = None
            rec = select_session(self.state, s.id)
            if rec is None or rec.state not in (SessionState.listening, SessionState.speaking):
                return
            left = s.last_activity + timeout - loop.time()
            if left > 0:
                s.idle_timer = loop.call_later(left, check)
            else:
                self.dispatch(A.idle_detected(A.SessionRef(s.id)))

        s.idle_timer = loop.call_later(timeout, check)

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

    # -- housekeeping ------------------------------------------------------------------------------
    def _schedule(self, session_id: str, delay: float, fn: Any) -> None:
        old = self._removals.pop(session_id, None)
        if old is not None:
            old.cancel()
        self._removals[session_id] = asyncio.get_running_loop().call_later(delay, fn, session_id)

    def forget_later(self, session_id: str) -> None:
        """An ended session stays (for resume and replay) for the resume window, then goes."""
        self._schedule(session_id, max(self.config.limits.resume_window_s, 1.0), self._remove)

    def _remove(self, session_id: str) -> None:
        self._removals.pop(session_id, None)
        self._deleted.discard(session_id)
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
