"""OpenAI audio transcription API provider (or any OpenAI-compatible server, such as another hub).

A batch provider: each utterance goes to `audio.transcriptions.create` as a 16 kHz WAV file; streaming
comes from StreamAdapter. Interim re-decodes are off by default (`interim: true` turns them on), since
each one is an API call. Options: base_url, api_key (else OPENAI_API_KEY), model (default whisper-1),
response_format (verbose_json by default for word timestamps; gpt-4o-*-transcribe models need json),
timeout_s, max_retries, organization.
"""

from __future__ import annotations

import io
import os
import wave
from dataclasses import replace
from typing import Any, Literal

import numpy as np
from pydantic import Field

from ..core.audio import HUB_RATE, RingBuffer, float_to_int16
from .base import (
    Capabilities,
    ProviderOptions,
    ProviderStream,
    Result,
    Segment,
    StreamOptions,
    StreamSink,
    TranscribeOptions,
    WordTiming,
)
from .batch import BatchProvider


def wav_bytes(audio: np.ndarray) -> bytes:
    pcm = audio if audio.dtype == np.int16 else float_to_int16(audio)
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(HUB_RATE)
        w.writeframes(pcm.tobytes())
    return buf.getvalue()


def _get(obj: Any, key: str, default: Any = None) -> Any:
    return obj.get(key, default) if isinstance(obj, dict) else getattr(obj, key, default)


class OpenAIOptions(ProviderOptions):
    model: str = "whisper-1"
    api_key: str | None = None        # default: $OPENAI_API_KEY
    base_url: str | None = None
    organization: str | None = None
    timeout_s: float = Field(60.0, gt=0)
    max_retries: int = Field(1, ge=0)
    interim: bool = False             # re-send the open utterance for partials (costs a request each)
    languages: list[str] = Field(default_factory=list)  # what the model is declared to know (empty: any)
    response_format: Literal["json", "text", "verbose_json"] = "verbose_json"
    condition_on_previous: bool = True  # send the previous final as `prompt`


class OpenAIProvider(BatchProvider):
    kind = "openai"
    Options = OpenAIOptions

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.interim = bool(self.options.get("interim", False))
        langs = tuple(str(x) for x in self.options.get("languages", ())) or ("auto",)
        self.capabilities = Capabilities(streaming=True, interim=self.interim, word_timestamps=True, languages=langs,
                                         max_concurrency=self.scheduler.workers, prompt=True)
        self.response_format = str(self.options.get("response_format", "verbose_json"))
        self._client: Any = None

    @property
    def model(self) -> str:
        return str(self.options.get("model", "whisper-1"))

    async def load(self) -> None:
        key = self.options.get("api_key") or os.environ.get("OPENAI_API_KEY")
        if not key:  # checked first: the answer needs no import of the client library
            self.set_health("unavailable", "no API key: set 'api_key' or OPENAI_API_KEY")
            return
        try:
            import openai
        except ImportError:
            self.set_health("unavailable", "the 'openai' extra is not installed (pip install 'asrhub[openai]')")
            return
        self._client = openai.OpenAI(api_key=str(key), base_url=self.options.get("base_url") or None,
                                     organization=self.options.get("organization") or None,
                                     timeout=float(self.options.get("timeout_s", 60.0)),
                                     max_retries=int(self.options.get("max_retries", 1)))
        self.set_health("available")

    async def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def decode(self, audio: np.ndarray, opts: TranscribeOptions) -> Result:
        if self._client is None:
            raise RuntimeError(f"provider {self.name} is not loaded")
        lang = opts.language or self.language
        verbose = self.response_format == "verbose_json"
        kwargs: dict[str, Any] = {"file": ("utterance.wav", wav_bytes(audio), "audio/wav"), "model": self.model,
                                  "response_format": self.response_format}
        if lang and lang != "auto":
            kwargs["language"] = lang
        prompt = " ".join(p for p in (opts.initial_prompt, opts.prompt) if p)
        if prompt:
            kwargs["prompt"] = prompt
        if opts.temperature is not None:
            kwargs["temperature"] = opts.temperature
        if verbose and opts.word_timestamps and not opts.interim:
            kwargs["timestamp_granularities"] = ["word", "segment"]
        out = self._client.audio.transcriptions.create(**kwargs)
        text = out if isinstance(out, str) else str(_get(out, "text", ""))
        words = [WordTiming(str(_get(w, "word", "")).strip(), int(float(_get(w, "start", 0)) * 1000),
                            int(float(_get(w, "end", 0)) * 1000), 1.0) for w in (_get(out, "words") or [])]
        segs = [Segment(float(_get(s, "start", 0.0)), float(_get(s, "end", 0.0)), str(_get(s, "text", "")).strip(),
                        avg_logprob=_float(_get(s, "avg_logprob")), no_speech_prob=_float(_get(s, "no_speech_prob")),
                        compression_ratio=_float(_get(s, "compression_ratio")),
                        temperature=_float(_get(s, "temperature")), tokens=tuple(_get(s, "tokens") or ()))
                for s in (_get(out, "segments") or [])]
        language = _get(out, "language") if not isinstance(out, str) else None
        return Result(text.strip(), words, language=lang if lang and lang != "auto" else language,
                      duration_ms=int(len(audio) * 1000 / HUB_RATE),
                      segments=segs)

    def open_stream(self, opts: StreamOptions, sink: StreamSink, ring: RingBuffer) -> ProviderStream:
        from .streaming import StreamAdapter
        return StreamAdapter(self, replace(opts, interim_results=opts.interim_results and self.interim), sink, ring)


def _float(v: Any) -> float | None:
    return None if v is None else float(v)
