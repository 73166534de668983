"""The OpenAI Realtime API's transcription events, built from the `openai` package's own types
(openai.types.realtime, GA names; the beta `transcription_session.*` form for older clients).

Client events are parsed here into one typed `ClientEvent`; server events are SDK models serialised as
the wire JSON. Each input format is one hub AudioSpec: G.711 (audio/pcmu, audio/pcma) goes to the pipeline as
pcm_mulaw/pcm_alaw at 8 kHz, decoded there like any other session's."""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from dataclasses import dataclass
from typing import Any, Literal

from openai.types.beta.realtime.transcription_session import TranscriptionSession
from openai.types.beta.realtime.transcription_session_update import TranscriptionSessionUpdate
from openai.types.beta.realtime.transcription_session_updated_event import TranscriptionSessionUpdatedEvent
from openai.types.realtime import (
    ConversationItemInputAudioTranscriptionCompletedEvent,
    ConversationItemInputAudioTranscriptionDeltaEvent,
    InputAudioBufferAppendEvent,
    InputAudioBufferClearedEvent,
    InputAudioBufferClearEvent,
    InputAudioBufferCommitEvent,
    InputAudioBufferCommittedEvent,
    InputAudioBufferSpeechStartedEvent,
    InputAudioBufferSpeechStoppedEvent,
    RealtimeErrorEvent,
    SessionCreatedEvent,
    SessionUpdatedEvent,
)
from openai.types.realtime.realtime_error import RealtimeError
from openai.types.realtime.realtime_transcription_session_create_request import (
    RealtimeTranscriptionSessionCreateRequest,
)
from pydantic import BaseModel, ValidationError

from ..core.audio import Encoding
from ..core.commands import AudioSpec, StartSession, TurnOptions, VadOptions
from ..core.errors import ErrorCode, HubError
from .openai_errors import error_type

AudioFormat = Literal["audio/pcm", "audio/pcmu", "audio/pcma"]
BETA_FORMATS: dict[str, AudioFormat] = {"pcm16": "audio/pcm", "g711_ulaw": "audio/pcmu", "g711_alaw": "audio/pcma"}
MAX_EVENT_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True)
class InputAudio:
    """What one Realtime input format is to the hub: its pipeline encoding, rate and bytes per sample."""

    encoding: Encoding
    sample_rate: int
    sample_bytes: int

    def spec(self) -> AudioSpec:
        return AudioSpec(encoding=self.encoding, sample_rate=self.sample_rate, channels=1)

    def seconds(self, n_bytes: int) -> float:
        return n_bytes / (self.sample_bytes * self.sample_rate)


INPUT_AUDIO: dict[AudioFormat, InputAudio] = {"audio/pcm": InputAudio("pcm_s16le", 24000, 2),
                                              "audio/pcmu": InputAudio("pcm_mulaw", 8000, 1),
                                              "audio/pcma": InputAudio("pcm_alaw", 8000, 1)}


def event_id() -> str:
    return "event_" + uuid.uuid4().hex[:20]


def item_id() -> str:
    return "item_" + uuid.uuid4().hex[:20]


@dataclass(frozen=True)
class TranscriptionConfig:
    """The effective transcription session (what `session.update` set)."""

    format: AudioFormat = "audio/pcm"
    model: str = "whisper-1"
    language: str | None = None
    prompt: str | None = None
    server_vad: bool = True
    silence_ms: int | None = None
    prefix_ms: int | None = None
    threshold: float | None = None
    eagerness: str | None = None  # semantic_vad (the hub's semantic turn mode); None: server_vad
    logprobs: bool = False
    beta: bool = False  # the session was set with `transcription_session.update`: answer in that form

    def ga_session(self) -> RealtimeTranscriptionSessionCreateRequest:
        fmt: dict[str, Any] = {"type": self.format, **({"rate": 24000} if self.format == "audio/pcm" else {})}
        td = ({"type": "server_vad", "silence_duration_ms": self.silence_ms or 500,
               "prefix_padding_ms": self.prefix_ms if self.prefix_ms is not None else 300,
               "threshold": self.threshold if self.threshold is not None else 0.5} if self.server_vad else None)
        if self.server_vad and self.eagerness is not None:
            td = {"type": "semantic_vad", "eagerness": self.eagerness}
        tr = {"model": self.model, **({"language": self.language} if self.language else {}),
              **({"prompt": self.prompt} if self.prompt else {})}
        return RealtimeTranscriptionSessionCreateRequest.model_validate({
            "type": "transcription", "audio": {"input": {"format": fmt, "transcription": tr, "turn_detection": td}},
            **({"include": ["item.input_audio_transcription.logprobs"]} if self.logprobs else {})})

    def vad(self) -> VadOptions:
        return VadOptions(enabled=self.server_vad, silence_ms=self.silence_ms, pre_roll_ms=self.prefix_ms,
                          threshold=self.threshold)

    def start(self, provider: str) -> StartSession:
        """The hub session this configuration runs as (validated when `session.update` set it)."""
        return StartSession(provider=provider, language=self.language, audio=INPUT_AUDIO[self.format].spec(),
                            interim_results=True, vad=self.vad(), prompt=self.prompt or None,
                            turn=TurnOptions(mode="semantic" if self.eagerness else "silence",
                                             eagerness=self.eagerness) if self.server_vad else None)

    def beta_session(self) -> dict[str, Any]:
        fmt = next(k for k, v in BETA_FORMATS.items() if v == self.format)
        ga = self.ga_session()
        assert ga.audio is not None and ga.audio.input is not None
        td = ga.audio.input.turn_detection
        return {"input_audio_format": fmt, "modalities": ["text"],
                "input_audio_transcription": ga.audio.input.transcription.model_dump(exclude_none=True)
                if ga.audio.input.transcription else None,
                "turn_detection": td.model_dump(exclude_none=True) if td is not None else None}


@dataclass(frozen=True)
class SessionUpdate:
    config: TranscriptionConfig
    event_id: str | None = None


@dataclass(frozen=True)
class Append:
    audio: bytes
    event_id: str | None = None


@dataclass(frozen=True)
class Commit:
    event_id: str | None = None


@dataclass(frozen=True)
class Clear:
    event_id: str | None = None


ClientEvent = SessionUpdate | Append | Commit | Clear


class RealtimeProblem(HubError):
    """A refused client event: the Realtime `error` event names its `param` and the client's `event_id`."""

    def __init__(self, message: str, param: str | None = None, client_event_id: str | None = None,
                 code: ErrorCode = ErrorCode.invalid_command) -> None:
        super().__init__(code, message)
        self.param = param
        self.client_event_id = client_event_id


def _problem(err: ValidationError, ev_id: str | None, under: str = "") -> RealtimeProblem:
    e = err.errors()[0]
    # a union's member is in the location by its class name ("turn_detection.ServerVad.threshold"): left out
    loc = under + ".".join(str(p) for p in e["loc"] if not (isinstance(p, str) and p[:1].isupper()))
    return RealtimeProblem(f"'{loc}': {e['msg']}", loc or None, ev_id)


def _ga_config(session: Any, base: TranscriptionConfig) -> TranscriptionConfig:
    if getattr(session, "type", None) != "transcription":
        raise RealtimeProblem("this hub serves transcription sessions only: send session.type \"transcription\" "
                              "(connect with ?intent=transcription)", "session.type")
    inp = session.audio.input if session.audio is not None else None
    if inp is None:
        return _config(base, False, include=session.include)
    t = inp.transcription
    tr = None if t is None else (
        t.model, t.language or (t.languages[0] if t.languages and len(t.languages) == 1 else None),
        t.prompt or (", ".join(t.keywords) if t.keywords else None))  # keywords: a Whisper prompt
    return _config(base, False, fmt=(inp.format.type or "audio/pcm") if inp.format is not None else None,
                   transcription=tr, td_set="turn_detection" in inp.model_fields_set, td=inp.turn_detection,
                   td_param="session.audio.input.turn_detection.type", include=session.include)


def _beta_config(upd: TranscriptionSessionUpdate, base: TranscriptionConfig) -> TranscriptionConfig:
    s, t = upd.session, upd.session.input_audio_transcription
    return _config(base, True, fmt=BETA_FORMATS[s.input_audio_format] if s.input_audio_format is not None else None,
                   transcription=None if t is None else (t.model, t.language, t.prompt),
                   td_set="turn_detection" in s.model_fields_set, td=s.turn_detection,
                   td_param="session.turn_detection.type", include=s.include)


def _config(base: TranscriptionConfig, beta: bool, *, fmt: str | None = None,
            transcription: tuple[str | None, str | None, str | None] | None = None, td_set: bool = False,
            td: Any = None, td_param: str = "session.audio.input.turn_detection.type",
            include: list[str] | None = None) -> TranscriptionConfig:
    """`base` with what a GA `session.update` or a beta `transcription_session.update` set: the input format,
    the transcription (model, language, prompt), turn_detection (when the event names it) and include[]."""
    cfg = base.__dict__ | {"beta": beta}
    if fmt is not None:
        cfg["format"] = fmt
    if transcription is not None:
        model, language, prompt = transcription
        cfg |= {"model": model or base.model, "language": language, "prompt": prompt}
    if td_set:
        if td is None:
            cfg["server_vad"] = False
        elif td.type == "semantic_vad":  # the hub's semantic turn mode (PROTOCOL: turn-taking)
            cfg |= {"server_vad": True, "silence_ms": None, "prefix_ms": None, "threshold": None,
                    "eagerness": td.eagerness or "auto"}
        elif td.type not in (None, "server_vad"):
            raise RealtimeProblem(f"turn_detection type '{td.type}' is not supported: use server_vad, "
                                  "semantic_vad or null", td_param)
        else:
            cfg |= {"server_vad": True, "silence_ms": td.silence_duration_ms, "prefix_ms": td.prefix_padding_ms,
                    "threshold": td.threshold, "eagerness": None}
    if include is not None:
        cfg["logprobs"] = "item.input_audio_transcription.logprobs" in include
    out = TranscriptionConfig(**cfg)
    validate(out, td_param.removesuffix(".type"), td_param.removesuffix("turn_detection.type") +
             ("input_audio_transcription" if beta else "transcription"))
    return out


# the hub's own field (VadOptions, StartSession) -> the Realtime field it comes from
_TD_FIELDS = {"silence_ms": "silence_duration_ms", "pre_roll_ms": "prefix_padding_ms", "threshold": "threshold"}
_TR_FIELDS = {"language": "language", "prompt": "prompt"}


def validate(cfg: TranscriptionConfig, td_param: str, tr_param: str) -> None:
    """Every field with the hub's own ranges (those of a `start` on the other wires, PROTOCOL §7), when
    `session.update` sets it: a value the hub session would refuse is refused here, naming the field,
    and the session keeps its previous configuration."""
    try:
        cfg.vad()
    except ValidationError as err:
        e = err.errors()[0]
        name = _TD_FIELDS.get(str(e["loc"][0]), str(e["loc"][0])) if e["loc"] else ""
        raise RealtimeProblem(f"turn_detection.{name}: {e['msg']} (got {e.get('input')!r})",
                              f"{td_param}.{name}") from None
    try:
        StartSession(language=cfg.language, prompt=cfg.prompt or None)
    except ValidationError as err:
        e = err.errors()[0]
        name = _TR_FIELDS.get(str(e["loc"][0]), str(e["loc"][0])) if e["loc"] else ""
        msg = str(e["msg"]).removeprefix("Value error, ")
        shown = e.get("input")
        shown = f"{shown[:40]!r}..." if isinstance(shown, str) and len(shown) > 40 else repr(shown)
        raise RealtimeProblem(f"transcription.{name}: {msg} (got {shown})", f"{tr_param}.{name}") from None


def _strict(model: type[BaseModel], data: dict[str, Any]) -> Any:
    """Validate with the SDK model, refusing fields it does not know (the SDK's models allow extras)."""
    obj = model.model_validate(data)
    extra = getattr(obj, "model_extra", None) or getattr(obj, "__pydantic_extra__", None)
    if extra:
        raise RealtimeProblem(f"unknown field '{next(iter(extra))}'", next(iter(extra)), data.get("event_id"))
    return obj


def parse_client_event(text: str | bytes, current: TranscriptionConfig) -> ClientEvent:
    if len(text) > MAX_EVENT_BYTES:
        raise RealtimeProblem(f"event of {len(text)} bytes exceeds the limit of {MAX_EVENT_BYTES}",
                              code=ErrorCode.payload_too_large)
    try:
        data = json.loads(text)
    except (ValueError, RecursionError) as e:
        raise RealtimeProblem(f"event is not valid JSON: {e}") from None
    if not isinstance(data, dict) or not isinstance(data.get("type"), str):
        raise RealtimeProblem("an event must be a JSON object with a string 'type'", "type")
    kind, ev_id = data["type"], data.get("event_id") if isinstance(data.get("event_id"), str) else None
    try:
        if kind == "session.update":
            session = data.get("session")
            if not isinstance(session, dict) or session.get("type") != "transcription":
                raise RealtimeProblem("this hub serves transcription sessions only: send session.type "
                                      "\"transcription\"", "session.type", ev_id)
            try:
                sess = RealtimeTranscriptionSessionCreateRequest.model_validate(session)
            except ValidationError as e:  # named from the event's top: session.audio.input...
                raise _problem(e, ev_id, "session.") from None
            return SessionUpdate(_ga_config(sess, current), ev_id)
        if kind == "transcription_session.update":
            return SessionUpdate(_beta_config(TranscriptionSessionUpdate.model_validate(data), current), ev_id)
        if kind == "input_audio_buffer.append":
            ev = _strict(InputAudioBufferAppendEvent, data)
            try:
                return Append(base64.b64decode(ev.audio, validate=True), ev_id)
            except (binascii.Error, ValueError):
                raise RealtimeProblem("'audio' is not valid base64", "audio", ev_id,
                                      code=ErrorCode.invalid_audio) from None
        if kind == "input_audio_buffer.commit":
            _strict(InputAudioBufferCommitEvent, data)
            return Commit(ev_id)
        if kind == "input_audio_buffer.clear":
            _strict(InputAudioBufferClearEvent, data)
            return Clear(ev_id)
    except ValidationError as e:
        raise _problem(e, ev_id) from None
    except RealtimeProblem as e:
        e.client_event_id = e.client_event_id or ev_id
        raise
    raise RealtimeProblem(f"event type '{kind}' is not supported by a transcription session", "type", ev_id)


# -- server events -----------------------------------------------------------------------------
def session_event(cfg: TranscriptionConfig, created: bool) -> BaseModel:
    if cfg.beta:
        return TranscriptionSessionUpdatedEvent.model_construct(  # no client_secret: not a minted session
            event_id=event_id(), type="transcription_session.updated",
            session=TranscriptionSession.model_construct(**cfg.beta_session()))
    if created:
        return SessionCreatedEvent(event_id=event_id(), type="session.created", session=cfg.ga_session())
    return SessionUpdatedEvent(event_id=event_id(), type="session.updated", session=cfg.ga_session())


def realtime_error(err: HubError) -> RealtimeErrorEvent:
    return RealtimeErrorEvent(event_id=event_id(), type="error", error=RealtimeError(
        message=err.message, type=error_type(err.http_status), code=err.code.value,
        param=getattr(err, "param", None), event_id=getattr(err, "client_event_id", None)))


def speech_started(item: str, ms: int) -> InputAudioBufferSpeechStartedEvent:
    return InputAudioBufferSpeechStartedEvent(event_id=event_id(), type="input_audio_buffer.speech_started",
                                              audio_start_ms=ms, item_id=item)


def speech_stopped(item: str, ms: int) -> InputAudioBufferSpeechStoppedEvent:
    return InputAudioBufferSpeechStoppedEvent(event_id=event_id(), type="input_audio_buffer.speech_stopped",
                                              audio_end_ms=ms, item_id=item)


def committed(item: str, previous: str | None) -> InputAudioBufferCommittedEvent:
    return InputAudioBufferCommittedEvent(event_id=event_id(), type="input_audio_buffer.committed", item_id=item,
                                          previous_item_id=previous)


def cleared() -> InputAudioBufferClearedEvent:
    return InputAudioBufferClearedEvent(event_id=event_id(), type="input_audio_buffer.cleared")


def delta(item: str, text: str) -> ConversationItemInputAudioTranscriptionDeltaEvent:
    return ConversationItemInputAudioTranscriptionDeltaEvent(
        event_id=event_id(), type="conversation.item.input_audio_transcription.delta", item_id=item,
        content_index=0, delta=text)


def completed(item: str, transcript: str, seconds: float) -> ConversationItemInputAudioTranscriptionCompletedEvent:
    return ConversationItemInputAudioTranscriptionCompletedEvent.model_validate({
        "event_id": event_id(), "type": "conversation.item.input_audio_transcription.completed", "item_id": item,
        "content_index": 0, "transcript": transcript, "usage": {"type": "duration", "seconds": round(seconds, 3)}})


def to_wire(ev: BaseModel) -> str:
    return ev.model_dump_json(exclude_unset=True)
