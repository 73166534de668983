"""Client -> hub commands (DESIGN §3.1). Unknown fields are rejected, not ignored."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Annotated, Any, Literal, TypeVar, get_args

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
)

from .audio import Encoding
from .errors import ErrorCode, HubError
from .language import parse_language


def _json_number(value: Any) -> Any:
    """A JSON number only: `true` or "500" is a wrong type (named in the error), not a silent 1 or a parse
    (what the OpenAPI schema says; 500.0 stays 500, as JSON Schema's integer allows)."""
    if isinstance(value, bool | str):
        raise ValueError("must be a number")
    return value


Number = BeforeValidator(_json_number)


class _Cmd(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AudioSpec(_Cmd):
    encoding: Encoding = "pcm_s16le"
    # strict: `true` or "16000" is a wrong type (named in the error), not a silent 1 or a parsed string
    sample_rate: int = Field(16000, strict=True)
    channels: int = Field(1, strict=True)


class VadOptions(_Cmd):
    enabled: bool = Field(True, strict=True)
    silence_ms: Annotated[int | None, Number] = Field(None, ge=50, le=10_000)
    threshold: Annotated[float | None, Number] = Field(None, gt=0, lt=1)
    min_speech_ms: Annotated[int | None, Number] = Field(None, ge=0, le=5_000)
    pre_roll_ms: Annotated[int | None, Number] = Field(None, ge=0, le=2_000)
    max_utterance_s: Annotated[float | None, Number] = Field(None, gt=1, le=120)
    kind: Literal["webrtc", "silero"] | None = None


class WakewordOptions(_Cmd):
    """Per-session override of `pipeline.wakeword` (unset fields keep the config's values)."""

    enabled: bool | None = Field(None, strict=True)
    phrase: str | None = Field(None, min_length=1, max_length=100)
    threshold: Annotated[float | None, Number] = Field(None, gt=0, lt=1)
    window_s: Annotated[float | None, Number] = Field(None, gt=0, le=600)


class TurnOptions(_Cmd):
    """When an utterance ends (DESIGN §3.1 `turn`): after a fixed silence (`silence`: vad.silence_ms), or when a
    turn model says the speaker has finished (`semantic`). Unset fields keep the config's (pipeline.turn)."""

    mode: Literal["silence", "semantic"] | None = None
    eagerness: Literal["low", "medium", "high", "auto"] | None = None   # semantic: threshold and timing
    min_silence_ms: int | None = Field(None, ge=50, le=5_000, strict=True)    # semantic: first question
    max_silence_ms: int | None = Field(None, ge=100, le=10_000, strict=True)  # semantic: end whatever

    @model_validator(mode="after")
    def _silences(self) -> TurnOptions:
        if self.min_silence_ms is not None and self.max_silence_ms is not None \
                and self.min_silence_ms >= self.max_silence_ms:
            raise ValueError(f"min_silence_ms ({self.min_silence_ms}) must be below max_silence_ms "
                             f"({self.max_silence_ms})")
        return self


class ResumeSpec(_Cmd):
    session_id: str = Field(min_length=1, max_length=128)
    last_seq: Annotated[int, Number] = Field(ge=0)
    # the client holds the audio it sent since the last final: the resume is answered first by
    # `session.started {seq: 0, resumed: true, audio_from_ms}` (how much audio the session has received)
    held_audio: bool = False


Hotword = Annotated[str, Field(min_length=1, max_length=100)]


class StartSession(_Cmd):
    provider: str | None = Field(None, max_length=128)
    language: str | None = Field(None, max_length=35)  # BCP-47 (en, zh-CN, zh-TW, ...) or "auto"
    audio: AudioSpec = Field(default_factory=AudioSpec)
    interim_results: bool = Field(True, strict=True)   # strict: "yes" or 1 is a wrong type, not a guess
    word_timestamps: bool = Field(False, strict=True)
    task: Literal["transcribe", "translate"] = "transcribe"
    prompt: str | None = Field(None, max_length=2000)   # context / vocabulary hint (Whisper initial_prompt)
    hotwords: list[Hotword] | None = Field(None, max_length=100)  # boosted phrases
    vad: VadOptions = Field(default_factory=VadOptions)
    turn: TurnOptions | None = None  # silence or semantic turn-taking (config: pipeline.turn)
    wakeword: WakewordOptions | None = None  # wake word gate on/off, phrase, threshold, window
    record: bool | None = Field(None, strict=True)  # recorder on/off for this session (config: pipeline.recorder)
    idle_timeout_s: float | None = Field(None, gt=0, strict=True)  # <= limits.idle_timeout_s; `keepalive` resets it
    resume: ResumeSpec | None = None

    @field_validator("language")
    @classmethod
    def _bcp47(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        try:
            return parse_language(value).tag
        except HubError as e:
            raise ValueError(e.message) from None


class StartCommand(StartSession):
    type: Literal["start"]


class FlushCommand(_Cmd):
    type: Literal["flush"]


class StopCommand(_Cmd):
    type: Literal["stop"]


class KeepAliveCommand(_Cmd):
    """No audio for a while, but the session stays open: resets its idle timer."""

    type: Literal["keepalive"]


AnyCommand = StartCommand | FlushCommand | StopCommand | KeepAliveCommand
Command = Annotated[AnyCommand, Field(discriminator="type")]
_command_adapter: TypeAdapter[Command] = TypeAdapter(Command)

MAX_COMMAND_BYTES = 64 * 1024
T = TypeVar("T")


def describe_validation(err: ValidationError) -> str:
    parts = []
    for e in err.errors()[:5]:
        loc = ".".join(str(p) for p in e["loc"] if p not in ("start", "flush", "stop", "keepalive")) or "command"
        if e["type"] == "extra_forbidden":
            parts.append(f"unknown field '{loc}'")
        elif e["type"] == "union_tag_invalid":
            parts.append(f"unknown command type {e.get('input', {}).get('type')!r}" if isinstance(
                e.get("input"), dict) else "unknown command type")
        elif e["type"] == "union_tag_not_found":
            parts.append("missing field 'type'")
        else:
            parts.append(f"'{loc}': {e['msg']}")
    return "; ".join(parts)


def parse_json(text: str | bytes, validate: Callable[[dict[str, Any]], T], *, what: str, not_object: str,
               empty_is_object: bool = False) -> T:
    """One JSON object from a client, validated: `what` ("command", "body") names it in the errors, a
    HubError each: payload_too_large over MAX_COMMAND_BYTES, invalid_command for what is not JSON,
    `not_object` for JSON that is not an object, and what `validate` refuses (as `validated`). With
    `empty_is_object`, an empty or blank text is `{}`."""
    if len(text) > MAX_COMMAND_BYTES:
        raise HubError(ErrorCode.payload_too_large, f"{what} is {len(text)} bytes; the limit is {MAX_COMMAND_BYTES}")
    if empty_is_object and not text.strip():
        return validated({}, validate, not_object)
    try:
        data: Any = json.loads(text)
    except (ValueError, RecursionError) as e:
        raise HubError(ErrorCode.invalid_command, f"{what} is not valid JSON: {e}") from None
    return validated(data, validate, not_object)


def validated(data: Any, validate: Callable[[dict[str, Any]], T], not_object: str) -> T:
    """`data` through a pydantic validator; not an object: HubError(invalid_command, `not_object`); refused:
    the HubError naming the fields (an unknown audio encoding: unsupported_encoding)."""
    if not isinstance(data, dict):
        raise HubError(ErrorCode.invalid_command, not_object)
    try:
        return validate(data)
    except ValidationError as e:
        raise validation_error(e) from None


def parse_command(text: str | bytes) -> AnyCommand:
    """Parse one JSON command; any problem is a HubError(invalid_command) naming it."""
    return parse_json(text, _command_adapter.validate_python, what="command",
                      not_object="command must be a JSON object with a 'type' field")


def parse_start(data: Any) -> StartSession:
    """Validate a StartSession body (HTTP/Socket.IO: no 'type' field)."""
    return validated(data, StartSession.model_validate, "start body must be a JSON object")


def validation_error(err: ValidationError) -> HubError:
    """A refused StartSession or command as the hub answers it: `unsupported_encoding` for an unknown
    audio encoding, else `invalid_command` naming the fields (`describe_validation`)."""
    for e in err.errors():
        if e["loc"] and e["loc"][-1] == "encoding" and e["type"] == "literal_error":
            return HubError(ErrorCode.unsupported_encoding,
                            f"audio.encoding {e.get('input')!r} is not supported; use one of "
                            f"{', '.join(get_args(Encoding))}")
    return HubError(ErrorCode.invalid_command, describe_validation(err))
