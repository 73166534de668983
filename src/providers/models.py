"""Where a local engine's model comes from, and which device runs it (DESIGN §5).

`model:` is one of
- `bundled:<name>` (`bundled.py`: tiny.en, base);
- a local directory (or, for openai-whisper, a `.pt` file);
- a Hugging Face model name (`Systran/faster-whisper-small`, or a faster-whisper size such as `large-v3`),
  looked up in the local Hugging Face cache only. Nothing is downloaded unless the provider block says
  `allow_download: true`.

`device: auto | cpu | cuda`: `auto` takes CUDA when the engine's library sees a GPU
(`ctranslate2.get_cuda_device_count()`, `torch.cuda.is_available()`); asking for `cuda` where there is
none is a ConfigError at load, not a silent CPU fallback.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Literal

from ..core.bundled import bundled_model_dir
from ..core.config import ConfigError

Device = Literal["auto", "cpu", "cuda"]


def resolve_device(device: Device, provider: str, cuda_count: Callable[[], int], library: str) -> str:
    """"cpu" or "cuda" for `device`; ConfigError when CUDA is asked for and `library` sees none."""
    if device == "cpu":
        return "cpu"
    try:
        n = cuda_count()
    except Exception:  # a library built without CUDA raises rather than answering 0
        n = 0
    if n > 0:
        return "cuda"
    if device == "cuda":
        raise ConfigError(f"invalid config: provider '{provider}' has device 'cuda', but {library} sees no CUDA "
                          "device on this machine (use device: auto or cpu)")
    return "cpu"


def ct2_cuda_count() -> int:
    import ctranslate2
    return int(ctranslate2.get_cuda_device_count())


def torch_cuda_count() -> int:
    import torch
    return int(torch.cuda.device_count()) if torch.cuda.is_available() else 0


def ct2_compute_type(compute_type: str, device: str) -> str:
    """`auto`: int8 on a CPU (fastest here), float16 on a GPU."""
    if compute_type != "auto":
        return compute_type
    return "float16" if device == "cuda" else "int8"


def resolve_ct2_model(spec: str, *, provider: str, cache_dir: str | None = None, hf_cache_dir: str | None = None,
                      allow_download: bool = False, extra: str = "faster-whisper") -> Path:
    """The CTranslate2 model directory `spec` names (see the module docstring)."""
    if spec.startswith("bundled:"):
        return bundled_model_dir(spec.split(":", 1)[1], cache_dir, extra)
    path = Path(spec).expanduser()
    if path.is_dir():
        if not (path / "model.bin").is_file():
            raise ConfigError(f"invalid config: provider '{provider}': no CTranslate2 model in '{spec}' "
                              "(expected model.bin)")
        return path
    if path.is_absolute() or spec.startswith((".", "~")):
        raise ConfigError(f"invalid config: provider '{provider}': model directory '{spec}' does not exist")
    return hf_model(spec, provider=provider, cache_dir=hf_cache_dir, allow_download=allow_download)


def hf_model(name: str, *, provider: str, cache_dir: str | None, allow_download: bool) -> Path:
    """A faster-whisper model from the Hugging Face cache (a size like `small`, or `owner/repo`)."""
    try:
        from faster_whisper.utils import download_model
    except ImportError:
        raise ConfigError(f"invalid config: provider '{provider}': model '{name}' is a Hugging Face name, which "
                          "needs faster-whisper (huggingface_hub) installed") from None
    try:
        return Path(download_model(name, local_files_only=not allow_download, cache_dir=cache_dir))
    except ValueError as e:  # not a size name and not "owner/repo"
        raise ConfigError(f"invalid config: provider '{provider}': model '{name}' is not a bundled name "
                          f"(bundled:tiny.en, bundled:base), a directory or a Hugging Face model name: {e}") from None
    except Exception as e:
        how = ("it could not be downloaded" if allow_download else
               "it is not in the local Hugging Face cache and allow_download is false")
        raise ConfigError(f"invalid config: provider '{provider}': model '{name}': {how} "
                          f"({type(e).__name__}: {e})") from None
