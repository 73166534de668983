"""faster-whisper (CTranslate2) provider. `model:` is `bundled:tiny.en`, `bundled:base`, a local
CTranslate2 model directory, or a Hugging Face model name found in the local cache (`providers.models`);
`device`/`compute_type` pick where and how it runs.

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
from dataclasses import replace
from typing import Any

import numpy as np
from pydantic import Field

from ..core.audio import HUB_RATE, int16_to_float
from ..core.bundled import is_english_only
from ..core.language import model_language
from ..core.work import Batch
from .base import ProviderOptions, Result, Segment, TranscribeOptions, WordTiming, whisper_capabilities
from .batch import BatchProvider
from .models import Device, ct2_compute_type, ct2_cuda_count, resolve_ct2_model, resolve_device
from .text_guard import drop_unsure_tail, tidy
from .text_join import join_words
from .whisper_ct2 import CT2Whisper, Thresholds, final_guard

log = logging.getLogger(__name__)


class FasterWhisperOptions(ProviderOptions):
    model: str = "bundled:tiny.en"  # bundled:<name>, a CTranslate2 model directory, or a HF cache name
    device: Device = "auto"
    device_index: int = Field(0, ge=0)
    compute_type: str = "auto"      # auto: int8 on CPU, float16 on CUDA; or any CTranslate2 compute type
    cpu_threads: int = Field(0, ge=0)
    cache_dir: str | None = None    # where bundled models are assembled (default ~/.cache/asrhub)
    hf_cache_dir: str | None = None  # the Hugging Face cache to look in (default: HF_HUB_CACHE or ~/.cache/huggingface/hub)
    allow_download: bool = False    # fetch a Hugging Face model that is not in the local cache
    # greedy by default: on the English manifest set beam 5 gave no better WER (streaming 5.4 % vs
    # 4.8 %) and took twice the decode time, which under load is the final's latency (BENCHMARKS)
    beam_size: int = Field(1, ge=1)
    interim_beam_size: int = Field(1, ge=1)
    # finals decoded together, or with more finals queued, search greedily: they are late already
    beam_size_under_load: int = Field(1, ge=1)
    no_speech_threshold: float = 0.6
    log_prob_threshold: float = -1.0
    compression_ratio_threshold: float = 2.4
    short_window: bool = True
    # 2-pass finals: an utterance up to 4 s is decoded with up to this much of the finals just before it
    # (their text forced as prefix, only the new words kept); 0: each utterance alone
    left_context_s: float = Field(10.0, ge=0, le=20)
    interim_nice: int = Field(10, ge=0, le=19)  # 0: partials share the finals' replicas
    condition_on_previous: bool = True  # the previous final is the next utterance's context
    patience: float = Field(1.0, gt=0, le=4)  # beam search ends after beam_size * patience finished hypotheses
    # a final whose mean log-probability is under log_prob_threshold is decoded again at these temperatures
    # (sampling) until one is not; the most probable reading stands (Whisper's temperature fallback)
    temperature_fallback: list[float] = Field(default_factory=list)
    suppress_tokens: list[int] = Field(default_factory=list)  # token ids never written, beside Whisper's own set
    # a final (not a partial) is encoded in a window of at least this many seconds, its audio followed by
    # silence (0: the utterance's own length + 1.5 s). base on the Mandarin clips' streams: 10 s took read
    # speech from 15.5 to 12.4 % CER and songs from 19.4 to 14.0 %, ~40 ms more encoder per final, but an
    # upload read 娱乐反斗星 as 娛樂反豆腥 (zh-TW); tiny.en on English gained nothing (BENCHMARKS, issue 23)
    min_final_window_s: float = Field(0.0, ge=0, le=30)


def english_only_model(spec: str) -> bool:
    name = spec.split(":", 1)[1] if spec.startswith("bundled:") else spec.rstrip("/").rsplit("/", 1)[-1]
    return is_english_only(name)


class FasterWhisperProvider(BatchProvider):
    kind = "faster_whisper"

    settings: FasterWhisperOptions
    Options = FasterWhisperOptions

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.capabilities = whisper_capabilities(not english_only_model(self.model), self.scheduler.workers,
                                                 hotwords=True, logprobs=True)
        self._model: Any = None
        o = self.settings
        self.beam_size = o.beam_size
        self.interim_beam_size = o.interim_beam_size
        self.beam_size_under_load = o.beam_size_under_load
        self.no_speech_threshold = o.no_speech_threshold
        self.log_prob_threshold = o.log_prob_threshold
        self.compression_ratio_threshold = o.compression_ratio_threshold
        self.short_window = o.short_window
        self.left_context_s = o.left_context_s
        self.interim_nice = o.interim_nice
        self.model_lang = model_language(self.language)
        self.device = "cpu"
        self._ct2: CT2Whisper | None = None

    @classmethod
    def check_device(cls, name: str, options: ProviderOptions) -> None:
        if isinstance(options, FasterWhisperOptions) and options.device == "cuda":
            resolve_device(options.device, name, ct2_cuda_count, "CTranslate2")

    async def load(self) -> None:
        try:
            from faster_whisper import WhisperModel
        except ImportError:
            self.set_health("unavailable", "the 'faster-whisper' extra is not installed")
            return
        o = self.settings
        self.device = resolve_device(o.device, self.name, ct2_cuda_count, "CTranslate2")  # ConfigError: raised
        try:
            path = str(await asyncio.to_thread(resolve_ct2_model, o.model, provider=self.name, cache_dir=o.cache_dir,
                                               hf_cache_dir=o.hf_cache_dir, allow_download=o.allow_download))
            compute_type = ct2_compute_type(o.compute_type, self.device)
            threads = o.cpu_threads or 1 if self.scheduler.workers > 1 else 0
            self._model = await asyncio.to_thread(
                WhisperModel, path, device=self.device, device_index=o.device_index, compute_type=compute_type,
                cpu_threads=threads, num_workers=self.scheduler.workers)
            interim = None
            if self.interim_nice > 0 and hasattr(os, "setpriority") and self.device == "cpu":
                interim = await asyncio.to_thread(_niced, self.interim_nice, path, compute_type,
                                                  self.scheduler.partial_workers)
        except Exception as e:  # a missing or broken model: unavailable, the hub runs on
            self.set_health("unavailable", str(e))
            return
        self.capabilities = whisper_capabilities(self._model.model.is_multilingual, self.scheduler.workers,
                                                 hotwords=True, logprobs=True)
        self._ct2 = CT2Whisper(self._model, Thresholds(self.no_speech_threshold, self.log_prob_threshold,
                                                       self.compression_ratio_threshold), interim_model=interim,
                               patience=o.patience, suppress=tuple(o.suppress_tokens),
                               min_final_window_s=o.min_final_window_s)
        await asyncio.to_thread(self.decode, np.zeros(8000, dtype=np.float32), TranscribeOptions())  # warm up
        self.set_health("available")

    @property
    def detects_language(self) -> bool:
        """Loaded and multilingual: `detect_language` answers from the model (DESIGN §5 routing)."""
        return self._ct2 is not None and bool(self._model.model.is_multilingual)

    async def detect_language(self, audio: np.ndarray) -> tuple[str, float]:
        """The language of `audio` (int16 or float32 mono at the hub rate, the first second or two of
        speech) and its probability: one encoder pass, run on a final lane of the scheduler (the finals of
        the utterance it routes wait for it)."""
        if self._ct2 is None:
            raise RuntimeError(f"provider {self.name} is not loaded")
        pcm = int16_to_float(audio) if audio.dtype == np.int16 else audio.astype(np.float32)
        ct2 = self._ct2
        fut = self.scheduler.submit(lambda: ct2.detect_language(pcm)[0], final=True)
        assert fut is not None
        return await fut

    def batch(self, audio: np.ndarray, opts: TranscribeOptions) -> Batch | None:
        if not (self.short_window and self._ct2 is not None and self._ct2.fits(audio)):
            return None
        # one batch shares the tokenizer (language, task) and the client's prompt/hotwords
        key = (f"{self.name}:{opts.interim}:{opts.language or self.model_lang}:{opts.word_timestamps}:{opts.task}:"
               f"{opts.initial_prompt!r}:{opts.hotwords!r}:{opts.temperature or 0.0}")
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
        langs = [o.language or self.model_lang for o in opts]
        opts = [o if o.language else _with_language(o, lang) for o, lang in zip(opts, langs, strict=True)]
        if opts[0].interim:
            beam = self.interim_beam_size
        elif len(audios) > 1 or self.scheduler.finals_waiting:
            beam = min(self.beam_size, self.beam_size_under_load)
        else:
            beam = self.beam_size
        results = self._ct2.decode_batch(audios, opts, beam)
        if not opts[0].interim:
            results = [self._guard(a, o, self._fallback(a, o, r)) for a, o, r in zip(audios, opts, results, strict=True)]
        return results

    def _fallback(self, audio: np.ndarray, opts: TranscribeOptions, r: Result) -> Result:
        """Whisper's temperature fallback on the short window: a final the decoder was unsure of (mean
        log-probability under `log_prob_threshold`, speech under it) is sampled again at each of
        `temperature_fallback` until a reading is sure; the most probable reading stands."""
        temps = self.settings.temperature_fallback
        if not temps or opts.temperature or not _unsure(r, self.log_prob_threshold, self.no_speech_threshold):
            return r
        assert self._ct2 is not None
        best = r
        for t in temps:
            cand = self._ct2.decode_batch([audio], [replace(opts, temperature=t)], 1)[0]
            if cand.segments and (cand.segments[0].avg_logprob or -9.0) > (best.segments[0].avg_logprob or -9.0):
                best = cand
            if not _unsure(cand, self.log_prob_threshold, self.no_speech_threshold):
                break
        return best

    def _guard(self, audio: np.ndarray, opts: TranscribeOptions, r: Result) -> Result:
        """A final must not be degenerate (final_guard): a loop, a self-repeat or a reading of the prompt is
        decoded again, and a known non-speech phrase without confident speech is dropped (the whole final, or
        a last segment of its own)."""
        r = drop_unsure_tail(r)
        verdict = final_guard(r, opts, self.compression_ratio_threshold)
        if verdict == "ok":
            return r
        if verdict == "non_speech":
            return Result(text="", language=r.language, duration_ms=r.duration_ms)
        # a loop, a self-repeat or an echo: the same decode without the prompt; if that is degenerate too,
        # Whisper's own full decode (30 s window, temperature fallback), no prompt
        plain = replace(opts, prompt=None)
        assert self._ct2 is not None
        retry = drop_unsure_tail(self._ct2.decode_batch([audio], [plain], self.beam_size)[0])
        if final_guard(retry, plain, self.compression_ratio_threshold) not in ("ok", "non_speech"):
            retry = drop_unsure_tail(self._full_window(audio, plain))
        if final_guard(retry, opts, self.compression_ratio_threshold) == "non_speech":
            return Result(text="", language=r.language, duration_ms=r.duration_ms)
        tidy(retry, opts)
        log.debug("final re-decoded (%s): %r -> %r", verdict, r.text, retry.text)
        return retry

    def decode(self, audio: np.ndarray, opts: TranscribeOptions) -> Result:
        if self._model is None:
            raise RuntimeError(f"provider {self.name} is not loaded")
        if self.short_window and self._ct2 is not None and self._ct2.fits(audio):
            return self.decode_batch([audio], [opts])[0]
        return self._full_window(audio, opts)

    def _full_window(self, audio: np.ndarray, opts: TranscribeOptions) -> Result:
        if self._model is None:
            raise RuntimeError(f"provider {self.name} is not loaded")
        lang = opts.language or self.model_lang
        if lang == "auto" or not self._model.model.is_multilingual:
            lang = None if self._model.model.is_multilingual else "en"
        segments, info = self._model.transcribe(
            audio,
            language=lang,
            task=opts.task,
            hotwords=" ".join(opts.hotwords) or None,
            beam_size=self.interim_beam_size if opts.interim else self.beam_size,
            word_timestamps=opts.word_timestamps and not opts.interim,
            initial_prompt=" ".join(p for p in (opts.initial_prompt, opts.prompt) if p) or None,
            prefix=opts.prefix,
            condition_on_previous_text=False,
            without_timestamps=opts.interim,
            vad_filter=False,
            temperature=(0.0 if opts.interim else opts.temperature if opts.temperature else [0.0, 0.2, 0.4, 0.6]),
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
        return Result(text=join_words(texts), words=words, language=info.language,
                      duration_ms=int(len(audio) * 1000 / HUB_RATE), segments=segs)


def _unsure(r: Result, log_prob: float, no_speech: float) -> bool:
    """Text the decoder was not sure of, over what it thought was speech."""
    seg = r.segments[0] if r.segments else None
    return seg is not None and (seg.avg_logprob or 0.0) < log_prob and (seg.no_speech_prob or 0.0) <= no_speech


def _with_language(o: TranscribeOptions, language: str | None) -> TranscribeOptions:
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
