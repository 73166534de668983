"""SessionService: the one facade every transport calls (DESIGN §2).

create/start, push audio, flush, stop, abort, detach/resume and the event stream of a session.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator, Coroutine
from typing import Any

from pystorex import Action

from ..operators.base import SpeechEnd, SpeechStart, WakeWord
from ..operators.pipeline import Pipeline, build_spec, validate_audio_spec
from ..providers.base import ProviderStream, StreamOptions, StreamResult, StreamSink
from ..providers.localise import localising_sink
from ..providers.registry import ProviderSet
from ..store import base as store_base
from ..store.hub.selectors import select_draining
from ..store.providers import actions as PA
from ..store.root import build_store
from ..store.sessions import actions as A
from ..store.sessions.selectors import select_live_count, select_session
from .audio import samples_to_ms
from .auth import key_id
from .channel import ChannelOverflow, EventChannel
from .commands import StartSession
from .config import HubConfig
from .errors import ErrorCode, HubError
from .events import (
    ErrorEvent,
    Event,
    SessionEnded,
    SessionStarted,
    SpeechEnded,
    SpeechStarted,
    WakewordDetected,
)
from .failover import Failover
from .language import model_language
from .metrics import HubMetrics, MetricsEffects
from .session import Session

log = logging.getLogger(__name__)


class SessionService:
    def __init__(self, config: HubConfig, providers: ProviderSet, metrics: HubMetrics | None = None) -> None:
        self.config = config
        self.providers = providers
        self.metrics = metrics or HubMetrics()
        self.sessions: dict[str, Session] = {}
        self.key_limits = {key_id(k) or "": k.max_sessions for k in config.server.auth.api_keys if k.max_sessions}
        self.store = build_store(self, MetricsEffects(self.metrics))
        self._reaper: asyncio.Task[None] | None = None
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self.failover = Failover(self)

    # -- lifecycle of the service ----------------------------------------------------------
    async def start(self) -> None:
        self._reaper = asyncio.create_task(self._reap_idle(), name="idle-reaper")
        await self.failover.start()

    async def close(self) -> None:
        if self._reaper:
            self._reaper.cancel()
        for s in list(self.sessions.values()):
            self.end(s.id, "shutdown")
        for t in self._timers.values():
            t.cancel()
        await self.failover.close()

    def dispatch(self, action: Action[Any]) -> None:
        self.store.dispatch(action)

    @property
    def state(self) -> Any:
        return self.store.state

    def live_count(self, api_key: str | None = None) -> int:
        return select_live_count(self.state, api_key)

    # -- commands --------------------------------------------------------------------------
    def start_session(self, cmd: StartSession, transport: str, api_key: str | None = None) -> Session:
        if cmd.resume is not None:
            return self.resume(cmd.resume.session_id, cmd.resume.last_seq)
        limits = self.config.limits
        if select_draining(self.state):
            raise HubError(ErrorCode.too_many_sessions, "the hub is shutting down; not admitting new sessions")
        if self.live_count() >= limits.max_sessions:
            raise HubError(ErrorCode.too_many_sessions, f"the hub is at its limit of {limits.max_sessions} sessions",
                           retry_after_s=5)
        per_key = self.key_limits.get(api_key or "", limits.max_sessions_per_key)
        if api_key is not None and self.live_count(api_key) >= per_key:
            raise HubError(ErrorCode.too_many_sessions, f"this API key is at its limit of {per_key} sessions",
                           retry_after_s=5)
        self._admit()
        validate_audio_spec(cmd.audio, limits)
        provider = self.providers.resolve(cmd.provider, cmd.language, cmd.task, cmd.prompt, cmd.hotwords)  # routes
        sid = uuid.uuid4().hex
        pipeline = Pipeline(build_spec(cmd.audio, cmd.vad, self.config.pipeline, cmd.wakeword, cmd.record), sid)
        session = Session(sid, cmd, transport, api_key, provider, pipeline,
                          EventChannel(sid, limits.max_events_buffered), limits.max_session_buffer_s)
        self.sessions[sid] = session
        self.dispatch(A.created(A.Created(sid, provider.name, transport, api_key, time.time())))
        return session

    def _admit(self) -> None:
        """Refuse new sessions before admitted ones fall behind: when finals already wait for more
        than `admission_lag_s`, inference is saturated (partials are being skipped already)."""
        lag = self.max_pending_lag()
        if lag > self.config.limits.admission_lag_s:
            raise HubError(ErrorCode.too_many_sessions, f"the hub is at capacity (results trail audio by {lag:.1f} s); "
                           "try again shortly", retry_after_s=max(1, int(lag)))

    def max_pending_lag(self) -> float:
        """Seconds since the oldest audio still waiting for its final arrived."""
        now = time.perf_counter()
        oldest = [s.arrival_time(min(end for _, end in s.pending.values()))
                  for s in self.sessions.values() if s.pending and not s.ended]
        return now - min(oldest) if oldest else 0.0

    def get(self, session_id: str) -> Session:
        s = self.sessions.get(session_id)
        if s is None:
            raise HubError(ErrorCode.session_not_found, f"no session '{session_id}'")
        return s

    def _live(self, session_id: str) -> Session:
        s = self.get(session_id)
        if s.ended:
            raise HubError(ErrorCode.invalid_command, f"session '{session_id}' has ended")
        if s.stopping:
            raise HubError(ErrorCode.invalid_command, f"session '{session_id}' is stopping; no more audio or commands")
        return s

    def push_audio(self, session_id: str, data: bytes) -> None:
        s = self._live(session_id)
        if len(data) > self.config.limits.max_message_bytes:
            raise HubError(ErrorCode.payload_too_large, f"audio message of {len(data)} bytes exceeds the limit of "
                           f"{self.config.limits.max_message_bytes}")
        if not data:
            return
        s.last_activity = time.monotonic()
        s.audio_bytes += len(data)
        assert s.pipeline is not None
        before = s.pipeline.offset
        items = s.pipeline.push(data)  # HubError(invalid_audio) propagates to the transport
        self.metrics.audio_seconds.labels(s.transport).inc((s.pipeline.offset - before) / 16000)
        self._feed(s, items)
        if s.audio_samples > self.config.limits.max_session_s * 16000:
            self.error(s.id, HubError(ErrorCode.payload_too_large, "session reached its maximum length "
                                      f"of {self.config.limits.max_session_s:.0f} s", fatal=True))

    def flush(self, session_id: str) -> None:
        s = self._live(session_id)
        s.last_activity = time.monotonic()
        assert s.pipeline is not None
        self._feed(s, s.pipeline.flush())

    def stop(self, session_id: str, reason: str = "stop") -> None:
        s = self._live(session_id)
        s.stopping = True
        self.dispatch(A.stop_requested(A.SessionRef(s.id)))
        assert s.pipeline is not None
        try:
            items = s.pipeline.close()
        except HubError as e:
            self.error(s.id, e)  # a fatal error ends the session (and releases its pipeline) right here
            items = s.pipeline.flush() if s.pipeline is not None and not s.ended else []
        if s.ended:
            return
        self._feed(s, items)
        self._spawn(s, self._finish(s, reason))

    async def drain(self, grace_s: float) -> None:
        """Shutdown: finalise every open utterance, then end each session with reason "shutdown";
        whatever is not done within `grace_s` is ended as it is."""
        for s in list(self.sessions.values()):
            if not s.ended and not s.stopping:
                try:
                    self.stop(s.id, "shutdown")
                except HubError:
                    self.end(s.id, "shutdown")
        tasks = [t for s in self.sessions.values() for t in s.tasks]
        if tasks:
            await asyncio.wait(tasks, timeout=grace_s)
        for s in list(self.sessions.values()):
            self.end(s.id, "shutdown")

    def abort(self, session_id: str) -> None:
        """DELETE: end now, no finalisation."""
        s = self.get(session_id)
        self.end(s.id, "client_gone")

    async def _finish(self, s: Session, reason: str) -> None:
        if not await self.failover.drain(s):  # follows the session across provider switches
            self.error(s.id, HubError(ErrorCode.provider_error, "provider did not deliver the last final in "
                                      f"{self.config.providers.timeout_s:.0f} s"))
        self.end(s.id, reason)

    # -- detach / resume -------------------------------------------------------------------
    def detach(self, session_id: str) -> None:
        s = self.sessions.get(session_id)
        if s is None or s.ended:
            return
        self.dispatch(A.detached(A.SessionRef(session_id)))
        window = self.config.limits.resume_window_s
        if window <= 0 or s.stopping:
            if not s.stopping:
                self.end(session_id, "client_gone")
            return
        loop = asyncio.get_running_loop()
        self._timers[session_id] = loop.call_later(window, self._detach_expired, session_id)

    def _detach_expired(self, session_id: str) -> None:
        self._timers.pop(session_id, None)
        rec = select_session(self.state, session_id)
        if rec is not None and not rec.attached:
            self.end(session_id, "client_gone")

    def resume(self, session_id: str, last_seq: int) -> Session:
        s = self.sessions.get(session_id)
        if s is None:
            raise HubError(ErrorCode.session_not_found, f"no session '{session_id}' to resume (expired or unknown)")
        if last_seq > s.channel.last_seq or not s.channel.can_replay(last_seq):
            raise HubError(ErrorCode.invalid_command, f"cannot resume from seq {last_seq}: the hub holds events "
                           f"up to {s.channel.last_seq}")
        t = self._timers.pop(session_id, None)
        if t:
            t.cancel()
        if not s.ended:
            self.dispatch(A.attached(A.SessionRef(session_id)))
            s.last_activity = time.monotonic()
        return s

    def events(self, session_id: str, after_seq: int = 0) -> AsyncIterator[Event]:
        return self.get(session_id).channel.subscribe(after_seq)

    # -- data plane -> control plane -------------------------------------------------------
    def _feed(self, s: Session, items: list[Any]) -> None:
        def marker(item: SpeechStart | SpeechEnd, uid: str) -> None:
            if isinstance(item, SpeechStart):
                ev: Event = SpeechStarted(session_id=s.id, offset_ms=samples_to_ms(item.offset))
                self.dispatch(A.speech_edge(A.SpeechEdge(s.id, ev, True)))
            else:
                ev = SpeechEnded(session_id=s.id, offset_ms=samples_to_ms(item.offset))
                self.dispatch(A.speech_edge(A.SpeechEdge(s.id, ev, False)))

        for item in items:
            if isinstance(item, WakeWord):  # route-only event, ahead of the utterance it opens
                ev = WakewordDetected(session_id=s.id, phrase=item.phrase, offset_ms=samples_to_ms(item.offset))
                self.dispatch(A.delivered(A.Delivered(s.id, ev)))
        s.feed(items, marker)

    def _on_result(self, s: Session, r: StreamResult) -> None:
        if s.ended:
            return
        if not r.is_final:
            self._emit_direct(s, s.partial_event(r))
            onset = s.first_partial_due.pop(r.utterance_id, None)
            self.metrics.partial(s.provider.name, None if onset is None else time.perf_counter() - s.arrival_time(onset))
            return
        s.pending.pop(r.utterance_id, None)
        if r.text.strip():
            ev = s.final_event(r, s.provider.name)
            self.dispatch(A.final_emitted(A.FinalEmitted(s.id, ev, ev.end_ms)))

    def _on_stream_error(self, s: Session, exc: BaseException, utterance_id: str | None) -> None:
        if s.ended or self.failover.on_stream_error(s, exc, utterance_id):
            return  # ended, or moved to a fallback provider that re-decodes the utterance
        if utterance_id is not None:
            s.pending.pop(utterance_id, None)
        self.dispatch(PA.failed(PA.Failed(s.provider.name, s.id, utterance_id, str(exc))))
        self.error(s.id, HubError(ErrorCode.provider_error, f"provider '{s.provider.name}' failed: {exc}"))

    def _emit_direct(self, s: Session, ev: Event) -> None:
        try:
            s.channel.emit(ev)
        except ChannelOverflow as e:
            if ev.type == "session.ended":
                return  # ending already
            self.error(s.id, HubError(ErrorCode.internal, f"client is not reading events: {e}", fatal=True))

    def error(self, session_id: str, err: HubError) -> None:
        s = self.sessions.get(session_id)
        if s is None or s.ended:
            return
        ev = ErrorEvent(session_id=session_id, code=err.code.value, message=err.message, fatal=err.fatal)
        self.dispatch(A.error_raised(A.ErrorRaised(session_id, ev, err.code.value, err.fatal)))

    # -- SessionRuntime (called by store effects) --------------------------------------------
    def new_stream(self, s: Session) -> ProviderStream:
        """A stream on the session's current provider; results of a replaced stream are dropped."""
        locale = s.start.language or s.provider.language
        opts = StreamOptions(session_id=s.id, language=model_language(locale),
                             interim_results=s.start.interim_results, word_timestamps=s.start.word_timestamps,
                             interim_interval_ms=self.config.scheduler.interim_interval_ms,
                             min_partial_ms=self.config.scheduler.min_partial_audio_ms,
                             task=s.start.task, prompt=s.start.prompt, hotwords=tuple(s.start.hotwords or ()),
                             locale=locale)
        own: list[ProviderStream] = []

        def current() -> bool:
            return not own or s.stream is own[0]

        sink = StreamSink(on_result=lambda r: self._on_result(s, r) if current() else None,
                          on_error=lambda e, u: self._on_stream_error(s, e, u) if current() else None)
        own.append(s.provider.open_stream(opts, localising_sink(sink, locale), s.ring))
        return own[0]

    def open_stream(self, session_id: str) -> Action[Any]:
        s = self.get(session_id)
        s.stream = self.new_stream(s)
        self.dispatch(PA.stream_opened(PA.StreamRef(s.provider.name, s.id)))
        a = s.start.audio
        ev = SessionStarted(session_id=s.id, provider=s.provider.name,
                            language=s.start.language or s.provider.language,
                            audio={"encoding": a.encoding, "sample_rate": a.sample_rate, "channels": a.channels},
                            config=self._effective(s))
        return A.started(A.Started(s.id, ev, s.provider.name))

    def _effective(self, s: Session) -> dict[str, Any]:
        assert s.pipeline is not None
        v = s.pipeline.spec.vad
        return {"interim_results": s.start.interim_results, "word_timestamps": s.start.word_timestamps,
                "vad": {"enabled": v.enabled, "kind": s.pipeline.spec.vad_kind, "silence_ms": v.silence_ms,
                        "min_speech_ms": v.min_speech_ms, "pre_roll_ms": v.pre_roll_ms,
                        "max_utterance_s": v.max_utterance_s},
                "wakeword": ({"enabled": True, "phrase": w.phrase, "threshold": w.threshold, "window_s": w.window_s}
                             if (w := s.pipeline.spec.wake) is not None else {"enabled": False}),
                "record": s.pipeline.spec.record is not None,
                "hub_sample_rate": 16000, "interim_interval_ms": self.config.scheduler.interim_interval_ms}

    def failure(self, session_id: str, error: Exception) -> Action[Any] | None:
        err = error if isinstance(error, HubError) else HubError(ErrorCode.internal, str(error))
        err.fatal = True
        ev = ErrorEvent(session_id=session_id, code=err.code.value, message=err.message, fatal=True)
        return A.error_raised(A.ErrorRaised(session_id, ev, err.code.value, True))

    def close_stream(self, session_id: str) -> Action[Any] | None:
        s = self.sessions.get(session_id)
        if s is None or s.stream is None:
            return None
        stream, s.stream = s.stream, None
        self._spawn(s, stream.close())
        return PA.stream_closed(PA.StreamRef(s.provider.name, s.id))

    def deliver(self, payload: store_base.EventPayload) -> None:
        s = self.sessions.get(payload.session_id)
        if s is not None and not payload.event.seq:  # seq set: delivered already (fatal errors go first)
            self._emit_direct(s, payload.event)

    def end(self, session_id: str, reason: str) -> None:
        s = self.sessions.get(session_id)
        if s is None or s.ended:
            return
        stats = s.stats()
        ev = SessionEnded(session_id=s.id, reason=reason, stats=stats)  # type: ignore[arg-type]
        self.dispatch(A.ended(A.Ended(s.id, ev, reason, stats)))
        s.ended = True
        s.release()
        t = self._timers.pop(session_id, None)
        if t:
            t.cancel()
        loop = asyncio.get_running_loop()
        self._timers[session_id] = loop.call_later(max(self.config.limits.resume_window_s, 1.0),
                                                   self._remove, session_id)

    def _remove(self, session_id: str) -> None:
        self._timers.pop(session_id, None)
        s = self.sessions.pop(session_id, None)
        if s is not None:
            for t in list(s.tasks):
                t.cancel()
        self.dispatch(A.removed(A.SessionRef(session_id)))

    def _spawn(self, s: Session, coro: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        s.tasks.add(task)
        task.add_done_callback(s.tasks.discard)

    async def _reap_idle(self) -> None:
        timeout = self.config.limits.idle_timeout_s
        while True:
            now = time.monotonic()
            deadline = now + timeout
            for s in list(self.sessions.values()):
                if s.ended or s.stopping:
                    continue
                if now - s.last_activity >= timeout:
                    self.dispatch(A.idle_detected(A.SessionRef(s.id)))
                else:
                    deadline = min(deadline, s.last_activity + timeout)
            await asyncio.sleep(max(0.05, deadline - time.monotonic()))
