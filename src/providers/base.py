"""The one provider interface (DESIGN §5).

A provider declares its capabilities, loads lazily, and offers two ways in:
`transcribe()` for a whole utterance or file, and `open_stream()` for live audio. Batch providers
implement `decode()` (blocking, run by the scheduler) and get streaming from `providers.streaming`.
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Protocol

import numpy as np
from pydantic import BaseModel, ConfigDict

from ..core.audio import AudioChunk, RingBuffer
from ..core.language import AUTO, WHISPER_LANGUAGES, parse_language

if TYPE_CHECKING:
    from ..core.work import Batch, Scheduling

Status = Literal["available", "loading", "unavailable", "unhealthy"]
Task = Literal["transcribe", "translate"]


@dataclass(frozen=True)
class Capabilities:
    """What a provider can do. `languages` ("auto",) means any language the provider's engine knows
    (`known_languages`, when it has such a list) plus per-utterance detection."""

    streaming: bool
    interim: bool
    word_timestamps: bool
    languages: tuple[str, ...]
    max_concurrency: int = 1
    prompt: bool = False      # honours a per-session `prompt` (context / vocabulary hint)
    hotwords: bool = False    # honours per-session `hotwords`
    translate: bool = False   # honours `task: translate` (any language in, English text out)
    logprobs: bool = False    # Result.logprobs when TranscribeOptions.logprobs is asked
    known_languages: frozenset[str] | None = None  # for ("auto",): the codes the engine knows (None: any)

    def as_dict(self) -> dict[str, Any]:
        return {"streaming": self.streaming, "interim": self.interim,
                "word_timestamps": self.word_timestamps, "languages": list(self.language_list()),
                "max_concurrency": self.max_concurrency, "prompt": self.prompt, "hotwords": self.hotwords,
                "translate": self.translate, "logprobs": self.logprobs}

    def language_list(self) -> tuple[str, ...]:
        """What `GET /v1/providers` (and `asrhub providers`, gRPC ListProviders) and a refusal list as
        supported: `languages`, and for ("auto",) the codes the engine knows (a multilingual Whisper: auto,
        af, am, ..., zh)."""
        if AUTO in self.languages and self.known_languages is not None:
            return (AUTO, *sorted(self.known_languages))
        return self.languages

    def supports_language(self, language: str) -> bool:
        """A BCP-47 tag or "auto" (assumed well-formed: `parse_language` first)."""
        tag = parse_language(language)
        if tag.is_auto:
            return True  # a one-language model "detects" its language
        if AUTO in self.languages:
            return self.known_languages is None or tag.code in self.known_languages
        return tag.code in self.languages or tag.tag in self.languages


def whisper_capabilities(multilingual: bool, max_concurrency: int, *, hotwords: bool,
                         logprobs: bool = False) -> Capabilities:
    """Whisper models: English-only ones neither detect nor translate."""
    return Capabilities(streaming=True, interim=True, word_timestamps=True,
                        languages=(AUTO,) if multilingual else ("en",), max_concurrency=max_concurrency,
                        prompt=True, hotwords=hotwords, translate=multilingual, logprobs=logprobs,
                        known_languages=WHISPER_LANGUAGES if multilingual else None)


class ProviderOptions(BaseModel):
    """A provider block's options (everything but `type`, `enabled`, `language`). Subclasses declare
    the keys their provider reads; an unknown key is a config error naming it."""

    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass
class ProviderHealth:
    status: Status
    reason: str | None = None


@dataclass(frozen=True)
class WordTiming:
    word: str
    start_ms: int
    end_ms: int
    confidence: float


@dataclass(frozen=True)
class TranscribeOptions:
    language: str | None = None    # the model's language code ("zh", not "zh-TW"); None/"auto": detect
    word_timestamps: bool = False
    prompt: str | None = None      # previous context (e.g. the last final)
    prefix: str | None = None      # text the hypothesis must start with (stable text)
    interim: bool = False          # a fast, throw-away hypothesis
    temperature: float | None = None
    task: Task = "transcribe"
    initial_prompt: str | None = None         # the client's `prompt`: kept on every decode, before `prompt`
    hotwords: tuple[str, ...] = ()            # the client's `hotwords`
    logprobs: bool = False         # fill Result.logprobs (token log-probabilities) where the model has them


@dataclass(frozen=True)
class Segment:
    """One decoded segment with the decoder's own statistics (None: the provider does not report it).
    `start`/`end` are seconds from the start of the audio given to the provider."""

    start: float
    end: float
    text: str
    avg_logprob: float | None = None
    no_speech_prob: float | None = None
    compression_ratio: float | None = None
    temperature: float | None = None
    tokens: tuple[int, ...] = ()


@dataclass(frozen=True)
class TokenLogprob:
    """The log-probability of one decoded text token."""

    token: str
    logprob: float

    @property
    def bytes(self) -> list[int]:
        return list(self.token.encode("utf-8"))


@dataclass
class Result:
    text: str
    words: list[WordTiming] = field(default_factory=list)
    language: str | None = None
    duration_ms: int = 0
    segments: list[Segment] = field(default_factory=list)
    logprobs: list[TokenLogprob] | None = None  # asked with TranscribeOptions.logprobs and supported


@dataclass(frozen=True)
class StreamOptions:
    session_id: str
    language: str | None           # the model's language code ("zh"), "auto" or None
    interim_results: bool
    word_timestamps: bool
    interim_interval_ms: int = 500
    min_partial_ms: int = 300
    task: Task = "transcribe"
    prompt: str | None = None      # the client's `prompt`
    hotwords: tuple[str, ...] = ()
    locale: str | None = None      # the tag the client asked for ("zh-TW"), for labels and script


@dataclass(frozen=True)
class StreamResult:
    """A hypothesis for one utterance. Offsets are sample offsets in the session timeline."""

    utterance_id: str
    text: str
    is_final: bool
    start: int
    end: int
    stable_text: str = ""
    words: tuple[WordTiming, ...] = ()
    language: str | None = None


@dataclass
class StreamSink:
    """Where a stream delivers results; called on the event loop thread only."""

    on_result: Callable[[StreamResult], None]
    on_error: Callable[[BaseException, str | None], None]  # (error, utterance_id that is affected)


class ProviderStream(abc.ABC):
    """Live recognition for one session. Markers come from the session's endpointer."""

    @abc.abstractmethod
    def push(self, chunk: AudioChunk) -> None: ...

    @abc.abstractmethod
    def start_utterance(self, utterance_id: str, offset: int, stable: str = "") -> None:
        """An utterance begins at `offset`. `stable`: text already promised to the client as this utterance's
        `stable_text` (a replay after a provider switch); a stream that can honour it continues it, so the
        promise holds across the switch."""

    @abc.abstractmethod
    def end_utterance(self, utterance_id: str, offset: int) -> None: ...

    def pause_hint(self, utterance_id: str, offset: int,
                   on_text: Callable[[str | None], None] | None = None) -> None:
        """Speech paused at `offset`; the utterance may end there (optional speculation). `on_text`, when
        given, is called once: with the text a speculative decode of the utterance up to `offset` gives, or
        with None at once by a stream that does not speculate (turn mode reads it, operators/turn.py)."""
        if on_text is not None:
            on_text(None)

    @abc.abstractmethod
    async def drain(self) -> None:
        """Wait until every final already asked for has been delivered (or failed)."""

    @abc.abstractmethod
    async def close(self) -> None: ...


@dataclass
class DecodeStats:
    """What decoding has cost so far (read by /metrics and the benches)."""

    decode_s: float = 0.0
    audio_s: float = 0.0
    finals: int = 0
    partials: int = 0

    def add(self, seconds: float, audio_s: float, interim: bool) -> None:
        self.decode_s += seconds
        self.audio_s += audio_s
        if interim:
            self.partials += 1
        else:
            self.finals += 1


class Provider(abc.ABC):
    """Base class. Subclasses set `capabilities` and implement load/open_stream/transcribe."""

    kind: str = "base"
    capabilities: Capabilities
    #: the typed options of this provider type (config validation uses it; `extra="forbid"`)
    Options: ClassVar[type[ProviderOptions]] = ProviderOptions

    def __init__(self, name: str, options: dict[str, Any] | ProviderOptions, scheduler: Scheduling,
                 language: str | None = None):
        self.name = name
        self.settings = options if isinstance(options, self.Options) else self.Options.model_validate(
            options.model_dump() if isinstance(options, ProviderOptions) else options)
        self.options: dict[str, Any] = self.settings.model_dump()  # read-only view, for older call sites
        self.scheduler = scheduler
        self.language = language
        self._health = ProviderHealth("loading")
        self.on_health: Callable[[Provider, ProviderHealth], None] | None = None  # set by the hub
        self.stats = DecodeStats()

    @classmethod
    def check_device(cls, name: str, options: ProviderOptions) -> None:
        """Raise ConfigError when the block asks for a device this machine cannot give (`device: cuda`
        without a GPU); run before serving, so the hub refuses to start with a one-line message."""
        return None

    @property
    def model(self) -> str:
        return str(getattr(self.settings, "model", "") or "")

    def health(self) -> ProviderHealth:
        """What the provider itself last reported (its load result, or a fault it noticed). The hub's
        view of its health is the store's providers slice, which these reports feed."""
        return self._health

    def set_health(self, status: Status, reason: str | None = None) -> None:
        """Report a health change (any thread): `on_health` turns it into `[Provider] Status Changed`."""
        self._health = ProviderHealth(status, reason)
        if self.on_health is not None:
            self.on_health(self, self._health)

    @abc.abstractmethod
    async def load(self) -> None: ...

    async def close(self) -> None:
        return None

    @abc.abstractmethod
    def open_stream(self, opts: StreamOptions, sink: StreamSink, ring: RingBuffer) -> ProviderStream: ...

    @abc.abstractmethod
    async def transcribe(self, audio: np.ndarray, opts: TranscribeOptions) -> Result:
        """`audio`: int16 mono at the hub rate."""


class BatchDecoder(Protocol):
    """What StreamAdapter needs of a batch provider (providers/batch.py implements it)."""

    name: str
    options: dict[str, Any]
    scheduler: Scheduling
    # seconds of earlier finals' audio a final may be re-decoded with (their text forced as `prefix`, only
    # the words after it kept); 0: each utterance alone. Only for providers that honour `prefix`.
    left_context_s: float

    def timed_decode(self, audio: np.ndarray, opts: TranscribeOptions) -> Result: ...

    def batch(self, audio: np.ndarray, opts: TranscribeOptions) -> Batch | None: ...
