"""The session effects' ports onto the data plane: provider streams (StreamPort), event channels
(ChannelPort), and the sink through which a stream's results come back as actions."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from typing import Any, Protocol

from pystorex import Action

from ..core.audio import HUB_RATE, samples_to_ms
from ..core.channel import ChannelOverflow
from ..core.config import HubConfig
from ..core.errors import ErrorCode, HubError, ProviderFailure
from ..core.events import AudioFormat, EffectiveConfig, ErrorEvent, SessionEnded, SessionStarted
from ..core.language import AUTO, model_language
from ..providers.base import Provider, ProviderStream, StreamOptions, StreamResult, StreamSink
from ..providers.localise import localising_sink
from ..providers.registry import ProviderSet
from ..store import base as store_base
from ..store.providers import actions as PA
from ..store.sessions import actions as A
from ..store.sessions.selectors import select_is_live, select_session
from .metrics import HubMetrics
from .session import Session

Actions = Sequence[Action[Any]]


class StreamsHost(Protocol):
    config: HubConfig
    providers: ProviderSet
    metrics: HubMetrics

    @property
    def state(self) -> Any: ...

    def plane(self, session_id: str) -> Session | None: ...

    def dispatch(self, action: Action[Any]) -> None: ...

    def error(self, session_id: str, err: HubError) -> None: ...

    def spawn(self, s: Session, coro: Any) -> None: ...

    def forget_later(self, session_id: str) -> None: ...


def error_actions(session_id: str, err: HubError) -> Actions:
    """`err` as the session's `[Session] Error Raised` (a fatal one ends the session: its effect asks)."""
    ev = ErrorEvent(session_id=session_id, code=err.code.value, message=err.message, fatal=err.fatal)
    return [A.error_raised(A.ErrorRaised(session_id, ev, err.code.value, err.fatal))]


def effective_config(s: Session, config: HubConfig) -> EffectiveConfig:
    """What the session runs with: config defaults with its own overrides applied."""
    assert s.pipeline is not None
    spec = s.pipeline.spec
    v, w = spec.vad, spec.wake
    return EffectiveConfig.model_validate({
        "interim_results": s.start.interim_results, "word_timestamps": s.start.word_timestamps,
        "vad": {"enabled": v.enabled, "kind": spec.vad_kind, "silence_ms": v.silence_ms,
                "min_speech_ms": v.min_speech_ms, "pre_roll_ms": v.pre_roll_ms,
                "max_utterance_s": v.max_utterance_s},
        "turn": {"mode": "semantic", "eagerness": t.eagerness, "threshold": t.options.threshold,
                 "min_silence_ms": t.options.min_silence_ms, "max_silence_ms": t.options.max_silence_ms}
        if (t := spec.turn) is not None else {"mode": "silence"},
        "wakeword": ({"enabled": True, "phrase": w.phrase, "threshold": w.threshold, "window_s": w.window_s}
                     if w is not None else {"enabled": False}),
        "record": spec.record is not None,
        "hub_sample_rate": HUB_RATE, "interim_interval_ms": config.scheduler.interim_interval_ms})


class Streams:
    """StreamPort and ChannelPort of the session effects, over the host's sessions."""

    def __init__(self, host: StreamsHost) -> None:
        self.host = host

    def _live(self, s: Session) -> bool:
        return select_is_live(self.host.state, s.id)

    def on_result(self, s: Session, r: StreamResult) -> None:
        if not self._live(s):
            return
        rec = select_session(self.host.state, s.id)
        if rec is None:
            return
        unrouted = rec.awaits_language(r.utterance_id)  # DESIGN §5: routing by language
        if not r.is_final:
            onset = s.first_partial_due.pop(r.utterance_id, None)
            self.host.metrics.partial(rec.provider, None if onset is None else time.perf_counter() - s.arrival_time(onset))
            if unrouted:  # the utterance may move to another provider: nothing is stable yet
                r = dataclasses.replace(r, stable_text="")
            self.host.dispatch(A.partial_emitted(A.PartialEmitted(s.id, s.partial_event(r))))
            return
        if unrouted:
            s.held.append(r)  # released (or re-decoded elsewhere) once the language is known
            return
        for action in self.final_actions(s, r):
            self.host.dispatch(action)

    def final_actions(self, s: Session, r: StreamResult) -> Actions:
        """A final result as `[Session] Final Emitted` (none for an empty one); the utterance is done."""
        rec = select_session(self.host.state, s.id)
        probability = rec.language_probability if rec is not None and rec.detect else None
        provider = rec.provider if rec is not None else ""
        ev = s.final_event(r, provider, probability) if r.text.strip() else None
        s.final_arrived(r.utterance_id)
        return [] if ev is None else [A.final_emitted(A.FinalEmitted(s.id, ev))]

    def on_stream_error(self, s: Session, exc: BaseException, utterance_id: str | None) -> None:
        """Failover acts on a provider's failure; an error that is the request's own (not retryable:
        bad audio, an option the provider refuses) goes to the session as it is."""
        if not self._live(s):
            return
        if isinstance(exc, HubError) and not exc.retryable:
            if utterance_id is not None:
                s.final_arrived(utterance_id)
            self.host.error(s.id, exc)
            return
        rec = select_session(self.host.state, s.id)
        assert rec is not None  # live
        err = ProviderFailure.wrap(rec.provider, exc)
        self.host.dispatch(PA.failed(PA.Failed(rec.provider, s.id, utterance_id, err.reason)))

    # -- StreamPort ------------------------------------------------------------------------------
    def new_stream(self, s: Session, provider: Provider) -> ProviderStream:
        """A stream on `provider` (the session's, or the one it moves to); results of a replaced stream are
        dropped."""
        rec = select_session(self.host.state, s.id)
        if rec is not None and rec.detect:  # routed by its language: the one detected, until then the provider's
            locale = rec.language if rec.language and provider.capabilities.supports_language(rec.language) \
                else provider.language
        else:
            locale = s.start.language or provider.language  # the tag asked for ("zh-TW"); the model gets "zh"
        opts = StreamOptions(session_id=s.id, language=model_language(locale),
                             interim_results=s.start.interim_results, word_timestamps=s.start.word_timestamps,
                             interim_interval_ms=self.host.config.scheduler.interim_interval_ms,
                             min_partial_ms=self.host.config.scheduler.min_partial_audio_ms,
                             task=s.start.task, prompt=s.start.prompt, hotwords=tuple(s.start.hotwords or ()),
                             locale=locale)
        own: list[ProviderStream] = []

        def current() -> bool:
            return not own or s.stream is own[0]

        sink = StreamSink(on_result=lambda r: self.on_result(s, r) if current() else None,
                          on_error=lambda e, u: self.on_stream_error(s, e, u) if current() else None)
        own.append(provider.open_stream(opts, localising_sink(sink, locale), s.ring))  # labels, OpenCC
        s.locale = locale
        return own[0]

    def open_stream(self, session_id: str) -> Actions:
        s, rec = self.host.plane(session_id), select_session(self.host.state, session_id)
        assert s is not None and rec is not None  # just created
        provider = self.host.providers.providers[rec.provider]  # the one the session was created on
        s.stream = self.new_stream(s, provider)
        a = s.start.audio
        ev = SessionStarted(session_id=s.id, provider=provider.name,  # detect: its language is to be detected
                            language=s.start.language or (AUTO if rec.detect else provider.language),
                            audio=AudioFormat(encoding=a.encoding, sample_rate=a.sample_rate, channels=a.channels),
                            config=effective_config(s, self.host.config))
        return [A.started(A.Started(s.id, ev))]

    def close_stream(self, session_id: str) -> Actions:
        s = self.host.plane(session_id)
        if s is None or s.stream is None:
            return ()
        stream, s.stream = s.stream, None
        self.host.spawn(s, stream.close())
        return ()

    def end_session(self, session_id: str, reason: str) -> Actions:
        s = self.host.plane(session_id)
        rec = select_session(self.host.state, session_id)
        if s is None or rec is None or not rec.live:
            return ()
        stats = rec.stats.model_copy(update={  # its counters, with what the data plane and the end know
            "audio_ms": samples_to_ms(s.audio_samples), "audio_bytes": s.audio_bytes,
            "duration_ms": int((time.time() - rec.created_at) * 1000),
            "language": rec.language if rec.detect else None,
            "language_probability": rec.language_probability if rec.detect else None})
        ev = SessionEnded(session_id=s.id, reason=reason, stats=stats)  # type: ignore[arg-type]
        s.release()
        self.host.forget_later(session_id)
        return [A.ended(A.Ended(s.id, ev, reason, stats))]

    # -- ChannelPort -----------------------------------------------------------------------------
    def deliver(self, payload: store_base.EventPayload) -> Actions:
        """Put the event in its session's channel; a client that does not read its events is answered
        with a fatal error (which ends the session)."""
        s = self.host.plane(payload.session_id)
        if s is None:
            return ()
        try:
            s.channel.emit(payload.event)
        except ChannelOverflow as e:
            if payload.event.type != "session.ended" and self._live(s):
                return error_actions(s.id, HubError(ErrorCode.slow_consumer, f"client is not reading events: {e}",
                                                    fatal=True))
        return ()
