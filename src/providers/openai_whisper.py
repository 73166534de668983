"""openai-whisper (PyTorch) provider.

`model:` is a path to a `.pt` checkpoint (`{"dims", "model_state_dict"}`), a model name found locally
(`<download_root>/<name>.pt`, by default openai-whisper's `~/.cache/whisper`), or `bundled:tiny.en` /
`bundled:base`: the bundled CTranslate2 model, converted once into `cache_dir` (default
`~/.cache/asrhub`) by `ct2_convert`. Nothing is ever downloaded. `device: auto|cpu|cuda` (auto: CUDA when
torch sees one); `compute_type` float16 runs fp16 decoding (CUDA only).

openai-whisper installs its kv-cache as forward hooks on the shared model, so two decodes must never
run at once on one model: decodes are serialised (max_concurrency 1); a partial that would have to wait
for the model is skipped (a final never is).
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import Field

from ..core.audio import HUB_RATE
from ..core.bundled import bundled_model_dir, cache_root, is_english_only
from ..core.config import ConfigError
from ..core.language import model_language
from ..core.work import Superseded
from .base import ProviderOptions, Result, Segment, TranscribeOptions, WordTiming, whisper_capabilities
from .batch import BatchProvider
from .models import Device, resolve_device, torch_cuda_count

log = logging.getLogger(__name__)


class OpenAIWhisperOptions(ProviderOptions):
    model: str = "bundled:tiny.en"  # bundled:<name>, a .pt checkpoint, or a model name in download_root
    device: Device = "auto"
    compute_type: Literal["auto", "float32", "float16"] = "auto"  # auto: float16 on CUDA, float32 on CPU
    cpu_threads: int = Field(0, ge=0)
    cache_dir: str | None = None      # converted bundled checkpoints (default ~/.cache/asrhub)
    download_root: str | None = None  # where `<name>.pt` is looked up (default ~/.cache/whisper)
    beam_size: int = Field(5, ge=1)
    interim_beam_size: int = Field(1, ge=1)
    no_speech_threshold: float = 0.6
    log_prob_threshold: float = -1.0
    compression_ratio_threshold: float = 2.4
    condition_on_previous: bool = True  # the previous final is the next utterance's context


def cache_dir(options: OpenAIWhisperOptions) -> Path:
    return cache_root(options.cache_dir)


def resolve_checkpoint(spec: str, options: OpenAIWhisperOptions) -> tuple[Path, str | None]:
    """(checkpoint path, official model name or None). Converts `bundled:` models on first use (atomic:
    written under a temporary name and renamed, so concurrent first starts are safe)."""
    if spec.startswith("bundled:"):
        name = spec.split(":", 1)[1]
        src = bundled_model_dir(name, options.cache_dir, "openai-whisper")
        out = cache_dir(options) / "openai-whisper" / f"{name}.pt"
        if not out.is_file() or out.stat().st_mtime < (src / "model.bin").stat().st_mtime:
            from .ct2_convert import convert
            log.info("converting bundled CTranslate2 %s to an openai-whisper checkpoint at %s", name, out)
            convert(src, out)
        return out, None
    path = Path(spec).expanduser()
    if path.is_file():
        return path, None
    if os.sep not in spec and not spec.endswith(".pt"):
        root = options.download_root or os.path.join(
            os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "whisper")
        local = Path(root).expanduser() / f"{spec}.pt"
        if local.is_file():
            return local, spec
        raise RuntimeError(f"openai-whisper model '{spec}' is not on this machine (looked for {local}); "
                           "models are never downloaded: give a checkpoint path or 'bundled:tiny.en'")
    raise RuntimeError(f"no openai-whisper checkpoint at '{spec}'")


class OpenAIWhisperProvider(BatchProvider):
    kind = "openai_whisper"

    settings: OpenAIWhisperOptions
    Options = OpenAIWhisperOptions

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        spec = self.model
        english_only = is_english_only(Path(spec.split(":", 1)[-1]).name.removesuffix(".pt"))
        self._set_caps(not english_only)
        self._model: Any = None
        self._lock = threading.Lock()
        self._count = threading.Lock()
        self._finals_waiting = 0
        o = self.settings
        self.beam_size = o.beam_size
        self.interim_beam_size = o.interim_beam_size
        self.no_speech_threshold = o.no_speech_threshold
        self.log_prob_threshold = o.log_prob_threshold
        self.compression_ratio_threshold = o.compression_ratio_threshold
        self.model_lang = model_language(self.language)
        self.device = "cpu"
        self.fp16 = False

    def _set_caps(self, multilingual: bool) -> None:
        # no hotwords: openai-whisper has no such option (a client may put them in `prompt`)
        self.capabilities = whisper_capabilities(multilingual, 1, hotwords=False)

    @classmethod
    def check_device(cls, name: str, options: ProviderOptions) -> None:
        if isinstance(options, OpenAIWhisperOptions) and options.device == "cuda":
            resolve_device(options.device, name, torch_cuda_count, "torch")

    async def load(self) -> None:
        try:
            import torch
            import whisper
        except ImportError:
            self.set_health("unavailable", "the 'openai-whisper' extra is not installed (needs torch first: "
                            "pip install torch==2.13.0 'asrhub[openai-whisper]')")
            return
        o = self.settings
        self.device = resolve_device(o.device, self.name, torch_cuda_count, "torch")  # ConfigError: raised
        if o.compute_type == "float16" and self.device != "cuda":
            raise ConfigError(f"invalid config: provider '{self.name}': compute_type float16 needs device cuda "
                              "(PyTorch has no fp16 CPU decoding)")
        self.fp16 = self.device == "cuda" and o.compute_type != "float32"
        try:
            path, name = await asyncio.to_thread(resolve_checkpoint, self.model, o)
            threads = o.cpu_threads or max(1, (os.cpu_count() or 1) // self.scheduler.workers)
            torch.set_num_threads(threads)
            self._model = await asyncio.to_thread(self._load_model, whisper, torch, path, name, self.device)
        except Exception as e:
            self.set_health("unavailable", str(e))
            return
        self._set_caps(bool(self._model.is_multilingual))
        self.set_health("available")

    @staticmethod
    def _load_model(whisper: Any, torch: Any, path: Path, name: str | None, device: str = "cpu") -> Any:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
        model = whisper.model.Whisper(whisper.model.ModelDimensions(**checkpoint["dims"]))
        model.load_state_dict(checkpoint["model_state_dict"])
        heads = checkpoint.get("alignment_heads")
        if heads:
            d = model.dims
            mask = torch.zeros(d.n_text_layer, d.n_text_head, dtype=torch.bool)
            for layer, head in heads:
                mask[int(layer), int(head)] = True
            model.register_buffer("alignment_heads", mask.to_sparse(), persistent=False)
        elif name is not None and name in whisper._ALIGNMENT_HEADS:
            model.set_alignment_heads(whisper._ALIGNMENT_HEADS[name])
        return model.to(device).eval()

    def decode(self, audio: np.ndarray, opts: TranscribeOptions) -> Result:
        if self._model is None:
            raise RuntimeError(f"provider {self.name} is not loaded")
        lang = self._language(opts)
        decode_options = self._decode_options(opts)
        with self._turn(opts.interim):
            out = self._model.transcribe(
                audio.astype(np.float32), language=lang, verbose=None, temperature=self._temperature(opts),
                word_timestamps=opts.word_timestamps and not opts.interim,
                initial_prompt=" ".join(p for p in (opts.initial_prompt, opts.prompt) if p) or None,
                condition_on_previous_text=False, no_speech_threshold=self.no_speech_threshold,
                logprob_threshold=self.log_prob_threshold,
                compression_ratio_threshold=self.compression_ratio_threshold, **decode_options)
        return self._result(out, audio, lang, decode_options.get("prefix"))

    def _language(self, opts: TranscribeOptions) -> str | None:
        """The language to decode in: English for an English-only model, None (detect) for "auto"."""
        lang = opts.language or self.model_lang
        if not self._model.is_multilingual:
            return "en"
        return None if lang == "auto" else lang

    @staticmethod
    def _temperature(opts: TranscribeOptions) -> float | tuple[float, ...]:
        """A partial: greedy; a final: the client's temperature, else openai-whisper's fallback ladder."""
        if opts.interim:
            return 0.0
        return (opts.temperature,) if opts.temperature is not None else (0.0, 0.2, 0.4, 0.6)

    def _decode_options(self, opts: TranscribeOptions) -> dict[str, Any]:
        beam = self.interim_beam_size if opts.interim else self.beam_size
        decode_options: dict[str, Any] = {"fp16": self.fp16, "without_timestamps": opts.interim,
                                          "task": opts.task if self._model.is_multilingual else "transcribe"}
        if beam > 1 and not opts.interim:
            decode_options["beam_size"] = beam
        # a forced prefix only for partials (decoded without timestamps): in a final, openai-whisper's timestamp
        # rules gave an empty decode after a text prefix, and without timestamps it ran on past the speech into
        # a hallucinated tail. A final is decoded free; the streaming wrapper makes it start with the stable
        # text it promised (text_guard.carry_stable)
        if opts.interim and opts.prefix:
            decode_options["prefix"] = opts.prefix
        return decode_options

    @contextmanager
    def _turn(self, interim: bool) -> Iterator[None]:
        """The model to this decode alone. A partial never waits for it: Superseded when a decode runs or a
        final waits; a final waits its turn."""
        if interim:
            if self._finals_waiting or not self._lock.acquire(blocking=False):
                raise Superseded()
        else:
            with self._count:
                self._finals_waiting += 1
            self._lock.acquire()
            with self._count:
                self._finals_waiting -= 1
        try:
            yield
        finally:
            self._lock.release()

    def _result(self, out: dict[str, Any], audio: np.ndarray, lang: str | None, prefix: str | None) -> Result:
        """openai-whisper's answer as a Result: its segments that are text and do not compress too well."""
        texts: list[str] = []
        words: list[WordTiming] = []
        segs: list[Segment] = []
        for s in out.get("segments", []):
            text = str(s["text"]).strip()
            if s["compression_ratio"] > self.compression_ratio_threshold or not text:
                continue
            texts.append(text)
            segs.append(Segment(float(s["start"]), float(s["end"]), text, avg_logprob=float(s["avg_logprob"]),
                                no_speech_prob=float(s["no_speech_prob"]),
                                compression_ratio=float(s["compression_ratio"]),
                                temperature=float(s["temperature"]), tokens=tuple(int(t) for t in s["tokens"])))
            words += [WordTiming(str(w["word"]).strip(), int(w["start"] * 1000), int(w["end"] * 1000),
                                 float(w["probability"])) for w in s.get("words") or []]
        if prefix:  # openai-whisper returns only what follows the prefix; the hub wants it all
            texts.insert(0, prefix.strip())
        return Result(text=" ".join(texts), words=words, language=out.get("language") or lang,
                      duration_ms=int(len(audio) * 1000 / HUB_RATE), segments=segs)
