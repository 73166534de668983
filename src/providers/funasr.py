"""FunASR provider, two ways:

- local (`model:` a FunASR model directory, e.g. Paraformer or SenseVoice with its config.yaml and
  model.pt): `funasr.AutoModel` decodes whole utterances; streaming comes from StreamAdapter. Models
  are never downloaded: a directory that is missing or incomplete makes the provider unavailable.
- runtime client (`url: ws://host:10095`): a FunASR runtime server does the work over its WebSocket
  protocol (see funasr_runtime.py), natively streaming; `mode: online | offline | 2pass`.

Options: hotwords ({word: weight}, a list, or a string), itn, chunk_size, chunk_interval, mode,
final_wait_s / final_idle_s (how long to wait for the server's last message), vad_model / punc_model
(local), languages.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import Field

from ..core.audio import HUB_RATE, RingBuffer
from ..core.config import ConfigError
from .base import (
    Capabilities,
    ProviderOptions,
    ProviderStream,
    Result,
    StreamOptions,
    StreamSink,
    TranscribeOptions,
    WordTiming,
)
from .batch import BatchProvider
from .models import Device

log = logging.getLogger(__name__)

#: funasr does not require torch, but its models run on it: the CPU build, before anything pulls a CUDA one
TORCH = "pip install torch==2.13.0"

MODES = ("online", "offline", "2pass")


def check_model_dir(spec: str) -> Path:
    path = Path(spec).expanduser()
    if not path.is_dir():
        raise RuntimeError(f"no FunASR model directory at '{spec}'; models are never downloaded "
                           "(give a local model directory, or 'url' of a FunASR runtime server)")
    if not (path / "config.yaml").is_file():
        raise RuntimeError(f"'{spec}' is not a FunASR model directory (no config.yaml)")
    if not any((path / n).is_file() for n in ("model.pt", "model.pb", "model.safetensors", "model.onnx")):
        raise RuntimeError(f"FunASR model directory '{spec}' holds no weights (model.pt); models are never downloaded")
    return path


class FunASROptions(ProviderOptions):
    model: str | None = None          # local FunASR model directory (Paraformer, SenseVoice, ...)
    vad_model: str | None = None      # local: optional VAD / punctuation model directories
    punc_model: str | None = None
    device: Device = "auto"           # local: auto takes CUDA when torch sees one
    compute_type: Literal["auto", "float32", "float16"] = "auto"  # local: float16 = fp16 (CUDA only)
    cpu_threads: int = Field(1, ge=1)
    url: str | None = None            # a FunASR runtime server (ws:// or wss://) instead of a local model
    mode: str = "2pass"               # runtime: online | offline | 2pass
    languages: list[str] = Field(default_factory=list)
    max_concurrency: int = Field(64, ge=1)
    chunk_size: list[int] | str = Field(default_factory=lambda: [5, 10, 5])
    chunk_interval: int = Field(10, ge=1)
    encoder_chunk_look_back: int = 4
    decoder_chunk_look_back: int = 0
    final_wait_s: float = Field(2.0, gt=0)
    final_idle_s: float = Field(0.5, gt=0)
    transcribe_timeout_s: float = Field(120.0, gt=0)
    connect_timeout_s: float = Field(5.0, gt=0)
    verify_tls: bool = True
    itn: bool = True
    hotwords: dict[str, int] | list[str] | str | None = None  # always-on; sessions add their own
    condition_on_previous: bool = True


class FunASRProvider(BatchProvider):
    kind = "funasr"
    Options = FunASROptions
    settings: FunASROptions

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        o = self.options
        self.url = str(o["url"]) if o.get("url") else None
        self.mode = str(o.get("mode", "2pass"))
        langs = tuple(str(x) for x in o.get("languages", ())) or ((self.language,) if self.language else ("auto",))
        remote = self.url is not None
        self.capabilities = Capabilities(streaming=True, interim=not remote or self.mode != "offline",
                                         word_timestamps=True, languages=langs,
                                         max_concurrency=int(o.get("max_concurrency", 64)) if remote else 1,
                                         hotwords=True)
        chunk = o.get("chunk_size", [5, 10, 5])
        self.chunk_size = [int(x) for x in (chunk.split(",") if isinstance(chunk, str) else chunk)]
        self.chunk_interval = int(o.get("chunk_interval", 10))
        self.final_wait_s = float(o.get("final_wait_s", 2.0))
        self.final_idle_s = float(o.get("final_idle_s", 0.5))
        self._model: Any = None
        self.device = "cpu"

    @property
    def model(self) -> str:
        return self.url or str(self.options.get("model") or "")

    # -- runtime protocol --------------------------------------------------------------------
    @property
    def stride_bytes(self) -> int:
        """Audio per message, as the reference client sends it: chunk_size[1] * 60 ms / chunk_interval."""
        return max(2, int(60 * self.chunk_size[1] / self.chunk_interval / 1000 * HUB_RATE) * 2)

    def hotword_map(self, session: tuple[str, ...] = ()) -> dict[str, int]:
        """The configured hotwords plus a session's, as {phrase: weight} (FunASR's default weight 20)."""
        hw = self.options.get("hotwords")
        out: dict[str, int] = {}
        if isinstance(hw, str):
            out = {w: 20 for w in hw.split()}
        elif isinstance(hw, list):
            out = {str(w): 20 for w in hw}
        elif isinstance(hw, dict):
            out = {str(k): int(v) for k, v in hw.items()}
        out.update({w: out.get(w, 20) for w in session})
        return out

    def hotwords(self, session: tuple[str, ...] = ()) -> str:
        hw = self.options.get("hotwords")
        if isinstance(hw, str) and not session:
            return hw
        m = self.hotword_map(session)
        return json.dumps(m, ensure_ascii=False) if m else ""

    def runtime_config(self, wav_name: str, language: str | None, mode: str,
                       hotwords: tuple[str, ...] = ()) -> dict[str, Any]:
        msg: dict[str, Any] = {
            "mode": mode, "chunk_size": self.chunk_size, "chunk_interval": self.chunk_interval,
            "encoder_chunk_look_back": int(self.options.get("encoder_chunk_look_back", 4)),
            "decoder_chunk_look_back": int(self.options.get("decoder_chunk_look_back", 0)),
            "wav_name": wav_name, "wav_format": "pcm", "audio_fs": HUB_RATE, "is_speaking": True,
            "hotwords": self.hotwords(hotwords), "itn": bool(self.options.get("itn", True)),
        }
        lang = language or self.language
        if lang and lang != "auto":
            msg["svs_lang"] = lang  # SenseVoice runtimes read the language here; others ignore it
        return msg

    @contextlib.asynccontextmanager
    async def connect(self) -> AsyncIterator[Any]:
        import websockets

        assert self.url is not None
        ctx = None
        if self.url.startswith("wss://"):
            ctx = ssl.create_default_context()
            if not self.options.get("verify_tls", True):  # the runtime's docker images ship a self-signed cert
                ctx.check_hostname = False
                ctx.verify_mode = ssl.CERT_NONE
        async with websockets.connect(self.url, subprotocols=["binary"],  # type: ignore[list-item]
                                      max_size=None, ping_interval=None, ssl=ctx,
                                      open_timeout=float(self.options.get("connect_timeout_s", 5.0))) as ws:
            yield ws

    async def probe(self) -> None:
        """Reachability of the runtime server (the hub's health probe); local models need none."""
        if self.url is None:
            return
        async with self.connect():
            pass

    # -- Provider ------------------------------------------------------------------------------
    @classmethod
    def check_device(cls, name: str, options: ProviderOptions) -> None:
        if isinstance(options, FunASROptions) and options.device == "cuda" and not options.url:
            from .models import resolve_device, torch_cuda_count
            resolve_device(options.device, name, torch_cuda_count, "torch")

    async def load(self) -> None:
        if self.mode not in MODES:
            self.set_health("unavailable", f"funasr 'mode' must be one of {', '.join(MODES)}, not '{self.mode}'")
            return
        if self.url is not None:
            try:
                await self.probe()
            except Exception as e:  # the server may come up later: the hub's probe keeps trying
                self.set_health("unhealthy", f"cannot reach the FunASR runtime at {self.url}: {e or type(e).__name__}")
                return
            self.set_health("available")
            return
        if not self.options.get("model"):  # before importing funasr (torch): the answer needs no import
            self.set_health("unavailable", "no 'url' of a FunASR runtime server and no local 'model' folder")
            return
        root = logging.getLogger()
        saved = (list(root.handlers), root.level)
        try:
            from funasr import AutoModel
        except ImportError as e:
            if e.name == "torch" or e.name is None and "PyTorch" in str(e):  # the extra is there; torch is not
                self.set_health("unavailable", f"a local FunASR model needs torch, which is not installed ({TORCH}); "
                                "or give 'url' of a FunASR runtime server")
            else:
                self.set_health("unavailable", "the 'funasr' extra is not installed (pip install 'asrhub[funasr]'), "
                                "or give 'url' of a FunASR runtime server")
            return
        finally:  # importing funasr configures the root logger; the hub's logging stays the hub's
            root.handlers[:], root.level = saved[0], saved[1]
        from .models import resolve_device, torch_cuda_count
        self.device = resolve_device(self.settings.device, self.name, torch_cuda_count, "torch")  # ConfigError
        if self.settings.compute_type == "float16" and self.device != "cuda":
            raise ConfigError(f"invalid config: provider '{self.name}': compute_type float16 needs device cuda")
        try:
            if not self.options.get("model"):
                raise RuntimeError("no 'model' (a local FunASR model directory) and no 'url' given")
            path = await asyncio.to_thread(check_model_dir, str(self.options["model"]))
            kwargs: dict[str, Any] = {"model": str(path), "device": self.device, "disable_update": True,
                                      "disable_pbar": True, "disable_log": True,
                                      "ncpu": int(self.options.get("cpu_threads", 1))}
            for key in ("vad_model", "punc_model"):
                if self.options.get(key):
                    kwargs[key] = str(await asyncio.to_thread(check_model_dir, str(self.options[key])))
            if self.device == "cuda" and self.settings.compute_type == "float16":
                kwargs["fp16"] = True
            self._model = await asyncio.to_thread(AutoModel, **kwargs)
        except Exception as e:
            self.set_health("unavailable", f"FunASR model failed to load: {e}")
            return
        self.set_health("available")

    def decode(self, audio: np.ndarray, opts: TranscribeOptions) -> Result:
        if self._model is None:
            raise RuntimeError(f"provider {self.name} is not loaded (local FunASR model)")
        kwargs: dict[str, Any] = {"input": audio.astype(np.float32), "use_itn": bool(self.options.get("itn", True))}
        lang = opts.language or self.language
        if lang:
            kwargs["language"] = lang
        hw = self.hotword_map(opts.hotwords)
        if hw:
            kwargs["hotword"] = " ".join(hw)
        out = self._model.generate(**kwargs)
        item = out[0] if out else {}
        text = str(item.get("text", ""))
        try:
            from funasr.utils.postprocess_utils import rich_transcription_postprocess
            text = rich_transcription_postprocess(text)  # SenseVoice's <|lang|><|emotion|> tags
        except ImportError:
            pass
        words: list[WordTiming] = []
        if opts.word_timestamps and item.get("timestamp"):
            from .funasr_runtime import words_of
            words = words_of({"timestamp": item["timestamp"]}, text)
        return Result(text.strip(), words, language=lang, duration_ms=int(len(audio) * 1000 / HUB_RATE))

    async def transcribe(self, audio: np.ndarray, opts: TranscribeOptions) -> Result:
        if self.url is None:
            return await super().transcribe(audio, opts)
        from .funasr_runtime import join_text, words_of

        pcm = audio if audio.dtype == np.int16 else (np.clip(audio, -1, 1) * 32767).astype(np.int16)
        texts: list[str] = []
        words: list[WordTiming] = []
        async with self.connect() as ws:
            await ws.send(json.dumps(self.runtime_config("transcribe", opts.language, "offline", opts.hotwords)))
            data = pcm.tobytes()
            step = HUB_RATE * 2 * 10  # offline: 10 s per message
            for i in range(0, len(data), step):
                await ws.send(data[i:i + step])
            await ws.send(json.dumps({"is_speaking": False}))
            loop = asyncio.get_running_loop()
            deadline = loop.time() + float(self.options.get("transcribe_timeout_s", 120.0))
            while True:
                wait = self.final_idle_s if texts else deadline - loop.time()
                try:
                    raw = await asyncio.wait_for(ws.recv(), max(0.01, wait))
                except TimeoutError:
                    if texts:
                        break
                    raise RuntimeError("the FunASR runtime sent no result in time") from None
                except Exception:  # the server closed the connection: what came is the answer
                    break
                if isinstance(raw, bytes):
                    continue
                m = json.loads(raw)
                if m.get("error"):
                    raise RuntimeError(f"funasr runtime error: {m['error']}")
                if m.get("mode") in ("offline", "2pass-offline") and str(m.get("text", "")).strip():
                    texts.append(str(m["text"]))
                    words += words_of(m, str(m["text"]))
                if m.get("is_final") is True or m.get("is_end") is True:
                    break
        return Result(join_text(texts), words if opts.word_timestamps else [], language=opts.language or self.language,
                      duration_ms=int(len(pcm) * 1000 / HUB_RATE))

    def open_stream(self, opts: StreamOptions, sink: StreamSink, ring: RingBuffer) -> ProviderStream:
        if self.url is None:
            return super().open_stream(opts, sink, ring)
        from .funasr_runtime import FunASRRuntimeStream
        return FunASRRuntimeStream(self, opts, sink, ring)
