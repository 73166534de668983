"""Routing by detected language (DESIGN §5): a session, or an upload, that names no provider and no language
(or `auto`) is routed by the language its speech is in, as if the client had named it.

A session starts at once on the default provider (English tiny.en by default), so its partials flow with
no added latency. When an utterance to be identified starts (`[Session] Language Detection Due`), its first
`DETECT_S` of audio (or all of it, when it ends sooner) goes to the multilingual model's language ID
(`[Session] Language Detection Requested`, one encoder pass on a final lane of the scheduler). Until the
answer, that utterance's partials carry no `stable_text` and its final waits (`Session.held`). The answer
(`[Session] Language Detected`) is routed by `providers.routes`: to another provider, or the same one in
another language, the session moves as failover moves it (a new stream, the open and pending utterances
replayed from the ring buffer; `provider.switched` with reason "language zh (p=0.98)" when the provider
changes); otherwise the finals that waited are released. Every final then carries `language` and
`language_probability`.

An answer below `CONFIDENT` is asked again over `DETECT_MAX_S` of the same utterance (when it has more
audio) before it routes; one below `MIN_P`, or Whisper's answer for noise (`nn`), routes nowhere. Detection runs again at an utterance that starts after a pause of
`REDETECT_PAUSE_S` or more (a new turn, where the language may change), and at every utterance while the
last answer was below `CONFIDENT` (one that opened while that answer was awaited included). Measured (docs/BENCHMARKS.md, bench/bench_detect.py): about 55 ms of
CPU per call over 2 s, 70 ms over 4 s.

An upload (OpenAI's `whisper-1` with no language, POST /v1/transcribe, gRPC Recognize, `asrhub transcribe`)
is identified once, over `DETECT_MAX_S` from its first speech, as OpenAI does over its first window; then
routed and decoded in that language.
"""

from __future__ import annotations

import logging
from collections.abc import Coroutine, Sequence
from typing import Any, Protocol

import numpy as np
from pystorex import Action

from ..core.audio import HUB_RATE, AudioChunk
from ..core.errors import HubError
from ..core.events import ProviderSwitched
from ..operators.base import SpeechStart
from ..operators.endpoint import Endpointer, EndpointOptions
from ..operators.vad_webrtc import WebRtcVad
from ..providers.base import Provider, Task
from ..providers.registry import LanguageDetector, ProviderSet
from ..store.sessions import actions as A
from ..store.sessions.selectors import select_is_live, select_session
from ..store.sessions.state import SessionRecord
from .session import Session

log = logging.getLogger(__name__)
Actions = Sequence[Action[Any]]

DETECT_S = 2.0          # audio the language ID hears first (from the utterance's start, pre-roll included)
DETECT_MAX_S = 4.0      # ... and, when that answer is unsure, once more (uploads: at once)
CONFIDENT = 0.8         # below this an answer is unsure: asked again with more audio, and at the next utterance
MIN_P = 0.5             # an answer below this does not move a session
#: Whisper's language ID answers Norwegian Nynorsk for noise and silence (2 s of hiss: nn 0.85): no answer
NON_SPEECH = frozenset({"nn"})
REDETECT_PAUSE_S = 2.0  # an utterance after a pause this long is identified again
SCAN_S = 30.0           # how far into an upload its first speech is looked for


class RoutingHost(Protocol):
    """What routing needs of the session service."""

    providers: ProviderSet

    @property
    def state(self) -> Any: ...

    def plane(self, session_id: str) -> Session | None: ...

    def move(self, s: Session, provider: Provider) -> None: ...

    def final_actions(self, s: Session, r: Any) -> Actions: ...


class LanguageRouting:
    """The RoutingPort behind the routing effects, and the checks the service makes as audio is fed."""

    def __init__(self, host: RoutingHost) -> None:
        self.host = host

    # -- the data plane's questions (called by the service while it feeds audio) ----------------------
    @staticmethod
    def due_at_start(s: Session, rec: SessionRecord, utterance_id: str, onset: int) -> Action[Any] | None:
        """`[Session] Language Detection Due` when the utterance starting at `onset` is to be identified."""
        if not rec.detect or rec.detecting is not None:
            return None  # a detection in flight routes the utterance that follows it too
        if (rec.language is None or (rec.language_probability or 0.0) < CONFIDENT
                or s.pause_before(onset) >= REDETECT_PAUSE_S):
            return A.detect_due(A.DetectDue(s.id, utterance_id, DETECT_S))
        return None

    @staticmethod
    def request(s: Session, rec: SessionRecord, ended: tuple[str, int, int] | None = None) -> Action[Any] | None:
        """`[Session] Language Detection Requested` for the due utterance once it has `DETECT_S` of audio,
        or when it has `ended` (id, start, end) before that; None otherwise."""
        if rec.detect_due is None:
            return None
        window = int(rec.detect_s * HUB_RATE)
        if ended is not None and ended[0] == rec.detect_due:
            uid, start, end = ended
            return A.detect_requested(A.DetectRequested(s.id, uid, start, min(end, start + window)))
        if s.open_utterance is not None and s.open_utterance[0] == rec.detect_due:
            uid, start = s.open_utterance
            if s.ring.end - start >= window:
                return A.detect_requested(A.DetectRequested(s.id, uid, start, start + window))
        return None

    # -- RoutingPort ------------------------------------------------------------------------------
    def detect(self, session_id: str, utterance_id: str, start: int, end: int) -> Coroutine[Any, Any, Actions] | None:
        s = self.host.plane(session_id)
        if s is None or not select_is_live(self.host.state, session_id):
            return None
        audio = s.ring.read(max(start, s.ring.start), min(end, s.ring.end))
        return self._detect(self.host.providers.detector(), session_id, utterance_id, audio)

    @staticmethod
    async def _detect(detector: LanguageDetector | None, session_id: str, utterance_id: str,
                      audio: np.ndarray) -> Actions:
        language: str | None = None
        probability: float | None = None
        if detector is not None and len(audio):
            try:
                language, probability = await detector.detect_language(audio)
            except Exception as e:  # the route stays; the next utterance asks again
                log.warning("session %s: language detection failed: %s", session_id, e)
        log.debug("session %s %s: language %s (p=%s)", session_id, utterance_id, language, probability)
        if language in NON_SPEECH or (probability or 0.0) < MIN_P:
            language = None  # nothing to route by
        return [A.language_detected(A.LanguageDetected(session_id, utterance_id, language, probability))]

    def route(self, session_id: str, utterance_id: str, language: str | None, probability: float | None) -> Actions:
        s = self.host.plane(session_id)
        rec = select_session(self.host.state, session_id)
        if s is None or rec is None or not rec.live or s.stream is None:
            return ()
        if (language is None or (probability or 0.0) < CONFIDENT) and rec.detect_s < DETECT_MAX_S:
            again = self._listen_longer(s, rec, utterance_id)
            if again is not None:
                return again  # its finals wait on
        held, s.held = s.held, []
        follower = self._follower(s, rec, utterance_id, language, probability)
        if language is not None:
            moved = self._move(s, rec.provider, language, probability or 0.0)
            if moved is not None:
                return [*moved, *follower]  # the held finals are decoded again by the new stream
        out: list[Action[Any]] = []
        for r in held:
            out += self.host.final_actions(s, r)
        return [*out, *follower]

    @staticmethod
    def _follower(s: Session, rec: SessionRecord, utterance_id: str, language: str | None,
                  probability: float | None) -> Actions:
        """An unsure answer (or none) routes nothing after it: the utterance that opened while it was awaited
        (not made due then: `due_at_start`) is identified itself. A 0.3 s blip the turn model ended is too
        short to identify, and the sentence after it would stay on the default provider."""
        if (language is not None and (probability or 0.0) >= CONFIDENT) or rec.detect_due is not None:
            return ()
        if s.open_utterance is None or s.open_utterance[0] == utterance_id:
            return ()
        uid, start = s.open_utterance
        due: list[Action[Any]] = [A.detect_due(A.DetectDue(s.id, uid, DETECT_S))]
        if s.ring.end - start >= int(DETECT_S * HUB_RATE):  # it has enough audio already
            due.append(A.detect_requested(A.DetectRequested(s.id, uid, start, start + int(DETECT_S * HUB_RATE))))
        return due

    @staticmethod
    def _listen_longer(s: Session, rec: SessionRecord, utterance_id: str) -> Actions | None:
        """An unsure answer: the utterance is identified again over `DETECT_MAX_S` (None: it had no more
        audio than was heard)."""
        due = A.detect_due(A.DetectDue(s.id, utterance_id, DETECT_MAX_S))
        if s.open_utterance is not None and s.open_utterance[0] == utterance_id:
            return [due]  # requested once it has that much audio, or ends
        span = s.pending.get(utterance_id)
        if span is None or span[1] - span[0] <= rec.detect_s * HUB_RATE:
            return None
        start, end = span
        return [due, A.detect_requested(A.DetectRequested(s.id, utterance_id, start,
                                                          min(end, start + int(DETECT_MAX_S * HUB_RATE))))]

    def _move(self, s: Session, old: str, language: str, probability: float) -> Actions | None:
        """Move the session (on provider `old`, its record says) where `language` routes (None: it is there
        already, or cannot move). A move to another provider answers `[Session] Language Routed` first."""
        try:
            target = self.host.providers.for_request(None, language)
        except HubError as e:
            log.warning("session %s: no provider for detected language %s: %s", s.id, language, e.message)
            return None
        locale = language if target.capabilities.supports_language(language) else target.language
        if target.name == old and locale == s.locale:
            return None
        try:
            self.host.move(s, target)
        except Exception as e:
            log.warning("session %s: cannot open a stream on %s for language %s: %s", s.id, target.name, language, e)
            return None
        log.info("session %s: language %s (p=%.2f): %s -> %s", s.id, language, probability, old, target.name)
        if target.name == old:
            return []
        reason = f"language {language} (p={probability:.2f})"
        ev = ProviderSwitched.model_validate({"session_id": s.id, "from": old, "to": target.name, "reason": reason})
        return [A.language_routed(A.LanguageRouted(s.id, ev, target.name))]


def first_speech(audio: np.ndarray) -> int | None:
    """Where the first speech of an upload (int16 mono, hub rate) starts (its pre-roll included); None when
    the WebRTC VAD finds none in its first `SCAN_S`."""
    head = audio[: int(SCAN_S * HUB_RATE)]
    ep = Endpointer(WebRtcVad(2), EndpointOptions(True, 150, 500, 200, SCAN_S))
    for item in ep.push(AudioChunk(head, 0)) + ep.flush(len(head)):
        if isinstance(item, SpeechStart):
            return int(item.audio_start)
    return None


async def detect_upload(providers: ProviderSet, audio: np.ndarray) -> tuple[str, float] | None:
    """The language of an upload, from `DETECT_MAX_S` of its first speech (None: no detector, or no speech
    to tell it by; a failure of the language ID propagates as the provider's error)."""
    detector = providers.detector()
    start = first_speech(audio) if detector is not None else None
    if detector is None or start is None:
        return None
    language, probability = await detector.detect_language(audio[start:start + int(DETECT_MAX_S * HUB_RATE)])
    return None if language in NON_SPEECH or probability < MIN_P else (language, probability)


async def route_upload(providers: ProviderSet, name: str | None, language: str | None, task: Task,
                       audio: np.ndarray) -> tuple[Provider, str] | None:
    """An upload that names no provider and no language (or `auto`): the provider its detected language
    routes to, and that language (None: not routed by detection; the caller keeps its choice)."""
    if not providers.detects(name, language, task):
        return None
    detected = await detect_upload(providers, audio)
    if detected is None:
        return None
    return providers.for_request(None, detected[0], task), detected[0]
