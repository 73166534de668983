"""Deepgram's live transcription wire (GET /v1/listen, DESIGN §3.8): its query parameters, its messages
both ways, and its refusals (HTTP 400/401 at the handshake, with Deepgram's error body and `dg-error`
header), as typed models. The transport is api.deepgram."""

from __future__ import annotations

import json
import re
import uuid
from typing import Annotated, Any, Literal, TypeVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError
from starlette.responses import JSONResponse

from ..core.audio import Encoding

# Deepgram's `encoding` (raw audio) -> the hub's; "opus" is Ogg Opus in Deepgram's docs
ENCODINGS: dict[str, Encoding] = {"linear16": "pcm_s16le", "linear32": "pcm_f32le", "mulaw": "pcm_mulaw",
                                  "alaw": "pcm_alaw", "opus": "ogg", "ogg-opus": "ogg", "flac": "flac"}
RAW_ENCODINGS = ("linear16", "linear32", "mulaw", "alaw")  # interleaved samples: channels can be split
NOT_SERVED = {  # Deepgram parameters the hub knows and refuses, with why
    "diarize": "speaker diarization is not available on this hub",
    "diarize_model": "speaker diarization is not available on this hub",
    "redact": "redaction is not available on this hub",
    "search": "search is not available on this hub",
    "replace": "replace is not available on this hub",
    "profanity_filter": "profanity_filter is not available on this hub",
    "detect_entities": "detect_entities is not available on this hub",
    "dictation": "dictation is not available on this hub",
    "callback": "callbacks are not available on this hub (the hub does not fetch or call URLs)",
    "callback_method": "callbacks are not available on this hub (the hub does not fetch or call URLs)",
    "language_hint": "language_hint is not available on this hub (use language, or language=multi)",
    "extra": "extra is not available on this hub",
    "alternatives": "alternatives is not available on this hub (one alternative per result)",
}
# Deepgram's own model names leave the provider to the hub (routed by language, as OpenAI's whisper-1 does)
DEEPGRAM_MODEL = re.compile(r"^(nova(-\d)?|enhanced|base|whisper)(-[a-z0-9]+)*$")


def _flag(value: Any) -> Any:
    """Deepgram's booleans in a query string: true / false (any case) only."""
    if isinstance(value, str):
        low = value.lower()
        if low in ("true", "false"):
            return low == "true"
        raise ValueError("must be true or false")
    return value


def _endpointing(value: Any) -> Any:
    """`endpointing`: milliseconds of silence, or false (no endpointing); true is Deepgram's default."""
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    return value


Flag = Annotated[bool, BeforeValidator(_flag)]


class CommonParams(BaseModel):
    """The query string both /v1/listen routes take. Unknown parameters are refused (Deepgram answers 400)."""

    model_config = ConfigDict(extra="forbid")

    model: str | None = Field(None, max_length=128)
    language: str | None = Field(None, max_length=35)
    encoding: str | None = None
    sample_rate: int | None = Field(None, ge=8000, le=48000)
    channels: int | None = Field(None, ge=1, le=8)
    multichannel: Flag = False
    punctuate: Flag = False
    smart_format: Flag = False
    numerals: Flag = False
    keywords: list[str] = Field(default_factory=list, max_length=100)
    keyterm: list[str] = Field(default_factory=list, max_length=100)
    tag: list[str] = Field(default_factory=list, max_length=20)
    mip_opt_out: Flag = False  # nothing leaves the hub anyway
    filler_words: Flag = False  # accepted: whether "uh"/"um" are written is the model's own habit
    version: str | None = None

    @property
    def split(self) -> bool:
        """multichannel with more than one channel: each channel is its own transcript (and hub session)."""
        return self.multichannel and (self.channels or 1) > 1

    @property
    def punctuated(self) -> bool:
        return self.punctuate or self.smart_format

    def terms(self) -> list[str]:
        """keywords (`word:boost`: the boost is dropped) and keyterms, as hotwords."""
        words = [k.rsplit(":", 1)[0] if re.search(r":-?\d+(\.\d+)?$", k) else k for k in self.keywords]
        return [t for t in dict.fromkeys(w.strip() for w in [*words, *self.keyterm]) if t][:100]


class ListenParams(CommonParams):
    """GET /v1/listen (live)."""

    interim_results: Flag = False
    endpointing: Annotated[int | bool, BeforeValidator(_endpointing)] = True
    utterance_end_ms: int | None = Field(None, ge=1000, le=5000)
    vad_events: Flag = False
    no_delay: Flag = False  # smart_format's wait for numbers: the hub formats nothing later, so none


class PrerecordedParams(CommonParams):
    """POST /v1/listen (pre-recorded)."""

    paragraphs: Flag = False
    detect_language: Flag = False  # -> language detection, answered in the channel's detected_language


PRERECORDED_NOT_SERVED = {k: f"{k} is not available on this hub" for k in (
    "utterances", "utt_split", "sentiment", "summarize", "topics", "custom_topic", "custom_topic_mode", "intents",
    "custom_intent", "custom_intent_mode", "measurements")}


class ListenRefused(Exception):
    """A refused handshake: HTTP `status` with Deepgram's error body."""

    def __init__(self, status: int, err_code: str, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.status, self.err_code, self.message, self.param = status, err_code, message, param


LIST_PARAMS = ("keywords", "keyterm", "tag")
P = TypeVar("P", bound=CommonParams)


def parse_params(items: list[tuple[str, str]], kind: type[P], not_served: dict[str, str] | None = None) -> P:
    """The query string as `kind`; a parameter Deepgram has and the hub does not is refused naming it."""
    raw: dict[str, Any] = {}
    refused = {**NOT_SERVED, **(not_served or {})}
    for key, value in items:
        if key == "token":  # the hub's own browser credential (?token=), taken by the auth middleware
            continue
        if key in refused:
            if value.lower() == "false":  # a feature asked off is what the hub does
                continue
            raise ListenRefused(400, "INVALID_QUERY_PARAMETER", f"{key}: {refused[key]}", key)
        if key in LIST_PARAMS:
            raw.setdefault(key, []).append(value)
        elif key in raw:
            raise ListenRefused(400, "INVALID_QUERY_PARAMETER", f"{key} is given more than once", key)
        else:
            raw[key] = value
    try:
        params = kind.model_validate(raw)
    except ValidationError as e:
        err = e.errors()[0]
        name = str(err["loc"][0]) if err["loc"] else "query"
        what = "is not a parameter of /v1/listen" if err["type"] == "extra_forbidden" else err["msg"]
        raise ListenRefused(400, "INVALID_QUERY_PARAMETER", f"{name}: {what}", name) from None
    if params.encoding is not None and params.encoding not in ENCODINGS:
        raise ListenRefused(400, "UNSUPPORTED_ENCODING", f"encoding: '{params.encoding}' is not served; this hub "
                            f"takes {', '.join(ENCODINGS)} or containerised audio (no encoding)", "encoding")
    if params.encoding in RAW_ENCODINGS and params.sample_rate is None:
        raise ListenRefused(400, "INVALID_QUERY_PARAMETER", f"sample_rate is required with encoding="
                            f"{params.encoding}", "sample_rate")
    if params.split and params.encoding not in RAW_ENCODINGS:
        raise ListenRefused(400, "INVALID_QUERY_PARAMETER", "multichannel: a transcript per channel needs raw "
                            f"audio (encoding {', '.join(RAW_ENCODINGS)} with sample_rate and channels); "
                            "containerised or compressed audio is mixed to mono (multichannel=false)", "multichannel")
    return params


def refusal(err: ListenRefused, request_id: str) -> JSONResponse:
    """Deepgram's handshake refusal: the error body, also in the `dg-error` header (what a browser or an SDK
    that cannot read the body sees)."""
    body = {"err_code": err.err_code, "err_msg": err.message, "request_id": request_id}
    if err.param is not None:
        body["param"] = err.param
    headers = {"dg-request-id": request_id, "dg-error": json.dumps(body)}
    if err.status == 401:
        headers["www-authenticate"] = "Token"
    return JSONResponse(body, status_code=err.status, headers=headers)


def credential(headers: dict[str, str]) -> str | None:
    """A key or token the way Deepgram clients send it: `Authorization: Token <key>` / `Bearer <token>`, or
    `Sec-WebSocket-Protocol: token, <key>` (browsers, which cannot set headers)."""
    scheme, _, value = headers.get("authorization", "").partition(" ")
    if scheme.lower() in ("token", "bearer") and value.strip():
        return value.strip()
    protocols = [p.strip() for p in headers.get("sec-websocket-protocol", "").split(",")]
    if len(protocols) == 2 and protocols[0].lower() in ("token", "bearer") and protocols[1]:
        return protocols[1]
    return None


# -- client messages --------------------------------------------------------------------------------
class ClientMessage(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["KeepAlive", "Finalize", "CloseStream", "Configure"]
    channel: int | None = Field(None, ge=0, strict=True)  # Finalize: only this channel (multichannel)
    keyterms: list[str] | None = None  # Configure (answered ConfigureFailure: keyterms are set at the handshake)
    features: dict[str, bool] | None = None


# -- server messages --------------------------------------------------------------------------------
class DgWord(BaseModel):
    word: str
    start: float
    end: float
    confidence: float
    punctuated_word: str


class Alternative(BaseModel):
    transcript: str
    confidence: float
    words: list[DgWord]


class Channel(BaseModel):
    alternatives: list[Alternative]


class ModelInfo(BaseModel):
    name: str
    version: str
    arch: str


class ResultMetadata(BaseModel):
    request_id: str
    model_info: ModelInfo
    model_uuid: str


class Results(BaseModel):
    type: Literal["Results"] = "Results"
    channel_index: list[int] = [0, 1]  # [this channel, the stream's channels]
    duration: float
    start: float
    is_final: bool
    speech_final: bool
    from_finalize: bool = False
    channel: Channel
    metadata: ResultMetadata


class Metadata(BaseModel):
    type: Literal["Metadata"] = "Metadata"
    transaction_key: str = "deprecated"
    request_id: str
    sha256: str
    created: str
    duration: float
    channels: int
    models: list[str]
    model_info: dict[str, ModelInfo]


class SpeechStartedMsg(BaseModel):
    type: Literal["SpeechStarted"] = "SpeechStarted"
    channel: list[int] = [0, 1]
    timestamp: float


class UtteranceEnd(BaseModel):
    type: Literal["UtteranceEnd"] = "UtteranceEnd"
    channel: list[int] = [0, 1]
    last_word_end: float


class ErrorMsg(BaseModel):
    type: Literal["Error"] = "Error"
    variant: str          # the hub's error code; "SchemaError" for a client message that is not one
    description: str
    message: str | None = None


class ConfigureFailure(BaseModel):
    """The answer to a `Configure`: the hub sets keyterms and formatting once, from the query string."""

    type: Literal["ConfigureFailure"] = "ConfigureFailure"
    request_id: str
    code: str = "CONFIGURE_KEYTERMS_NOT_SUPPORTED"
    description: str = ("this hub takes keyterms and formatting from the query string (keyterm, keywords, "
                        "punctuate, smart_format) when the stream opens; a Configure cannot change them mid-stream")


def model_uuid(provider: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"asrhub:{provider}"))


PUNCT = re.compile(r"[^\w'\s-]+")


def plain(text: str) -> str:
    """A transcript as Deepgram gives it without punctuate: lower case, no punctuation."""
    return " ".join(PUNCT.sub("", text).lower().split())
