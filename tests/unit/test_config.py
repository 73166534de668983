from __future__ import annotations

from pathlib import Path

import pytest

from asrhub.core.config import ConfigError, load_config


def _write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "c.yaml"
    p.write_text(text)
    return p


def test_embedded_default_loads() -> None:
    cfg = load_config(None, env={})
    assert cfg.providers.default == "faster_whisper"
    assert cfg.providers.instances["faster_whisper"].options["model"] == "bundled:tiny.en"
    assert cfg.pipeline.vad.kind == "webrtc"


def test_typo_names_the_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"unknown key 'pipeline.vad.silense_ms'"):
        load_config(_write(tmp_path, "pipeline:\n  vad:\n    silense_ms: 300\n"), env={})


def test_bad_value_names_the_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"'server.port'"):
        load_config(_write(tmp_path, "server:\n  port: 99999\n"), env={})


def test_default_must_be_configured(tmp_path: Path) -> None:
    text = "providers:\n  default: vosk\n  instances:\n    faster_whisper: {model: bundled:tiny.en}\n"
    with pytest.raises(ConfigError, match="providers.default"):
        load_config(_write(tmp_path, text), env={})


def test_env_substitution_and_default(tmp_path: Path) -> None:
    p = _write(tmp_path, "server:\n  port: ${HUB_PORT:8123}\n  host: ${HUB_HOST}\n")
    cfg = load_config(p, env={"HUB_HOST": "127.0.0.2"})
    assert cfg.server.port == 8123 and cfg.server.host == "127.0.0.2"
    with pytest.raises(ConfigError, match="HUB_HOST"):
        load_config(p, env={})


def test_env_overrides(tmp_path: Path) -> None:
    cfg = load_config(None, env={"ASRHUB_LIMITS__MAX_SESSIONS": "7", "ASRHUB_PIPELINE__VAD__KIND": "silero"})
    assert cfg.limits.max_sessions == 7 and cfg.pipeline.vad.kind == "silero"
    with pytest.raises(ConfigError, match="limits.max_sesions"):
        load_config(None, env={"ASRHUB_LIMITS__MAX_SESIONS": "7"})


def test_unreadable_and_invalid_yaml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "missing.yaml", env={})
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(_write(tmp_path, "a: [1,\n"), env={})
