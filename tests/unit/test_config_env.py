"""Issue 14: where configuration comes from (defaults < file < ASRHUB_<SECTION>__<KEY> env < CLI flags),
which environment variables are config, `asrhub config check`, JSON log lines, token redaction."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from asrhub.core.config import ConfigError, effective_config, load_config
from asrhub.core.logs import JsonFormatter, RedactTokens, redact_url


def _write(tmp: Path, text: str) -> Path:
    p = tmp / "hub.yaml"
    p.write_text(text)
    return p


def test_client_variables_are_not_config(caplog: pytest.LogCaptureFixture) -> None:
    """PROTOCOL.md tells client users to export ASRHUB_URL / ASRHUB_API_KEY: the server ignores them."""
    env = {"ASRHUB_URL": "http://127.0.0.1:8000", "ASRHUB_API_KEY": "sk-x", "ASRHUB_GRPC": "127.0.0.1:50051",
           "ASRHUB_SERVER__PORT": "9123"}
    with caplog.at_level(logging.DEBUG, logger="asrhub.core.config"):
        cfg = load_config(None, env=env)
    assert cfg.server.port == 9123
    ignored = " ".join(r.getMessage() for r in caplog.records if r.levelno == logging.DEBUG)
    for name in ("ASRHUB_URL", "ASRHUB_API_KEY", "ASRHUB_GRPC"):
        assert f"{name} is not a config override" in ignored


def test_a_misspelt_section_is_still_an_error() -> None:
    with pytest.raises(ConfigError, match="unknown key 'servr'"):
        load_config(None, env={"ASRHUB_SERVR__PORT": "1"})


def test_asrhub_config_names_the_file_and_an_explicit_path_wins(tmp_path: Path) -> None:
    named = _write(tmp_path, "server:\n  port: 8111\n")
    other = tmp_path / "other.yaml"
    other.write_text("server:\n  port: 8222\n")
    assert load_config(None, env={"ASRHUB_CONFIG": str(named)}).server.port == 8111
    assert load_config(other, env={"ASRHUB_CONFIG": str(named)}).server.port == 8222
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_config(None, env={"ASRHUB_CONFIG": str(tmp_path / "missing.yaml")})


def test_precedence_defaults_file_env(tmp_path: Path) -> None:
    p = _write(tmp_path, "limits:\n  max_sessions: 10\n  idle_timeout_s: 12\n")
    cfg = load_config(p, env={"ASRHUB_LIMITS__MAX_SESSIONS": "3"})
    assert cfg.limits.max_sessions == 3            # env over file
    assert cfg.limits.idle_timeout_s == 12         # file over default
    assert cfg.limits.max_sessions_per_key == 32   # default


def test_effective_config_masks_secrets(tmp_path: Path) -> None:
    p = _write(tmp_path, "server:\n  auth:\n    api_keys:\n      - {key: sk-live-123, name: ops}\n"
                         "providers:\n  default: faster_whisper\n  instances:\n"
                         "    faster_whisper: {model: bundled:tiny.en}\n    openai: {api_key: sk-openai-456}\n"
                         "cluster:\n  redis_url: redis://:hunter2-redis@10.0.0.5:6379/0\n")
    out = effective_config(load_config(p, env={}))
    text = json.dumps(out)
    assert "sk-live-123" not in text and "sk-openai-456" not in text and "hunter2" not in text
    assert out["cluster"]["redis_url"] == "redis://:***@10.0.0.5:6379/0"  # a password in a URL
    assert out["server"]["auth"]["api_keys"][0] == {"key": "***", "name": "ops", "max_sessions": None,
                                                    "requests_per_minute": None}
    assert out["providers"]["instances"]["openai"]["api_key"] == "***"
    assert out["limits"]["max_sessions_per_key"] == 32  # a number under a key-like name is not a secret
    assert out["logging"]["json"] is False              # by alias, as written in files


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    import os
    return subprocess.run([sys.executable, "-m", "asrhub.cli", *args], capture_output=True, text=True, timeout=60,
                          env={**os.environ, **(env or {})})


def test_config_check_cli(tmp_path: Path) -> None:
    good = _write(tmp_path, "server:\n  auth:\n    api_keys: [{key: sk-live-123}]\nlogging:\n  json: true\n")
    r = _cli("config", "check", str(good), env={"ASRHUB_LIMITS__MAX_SESSIONS": "4", "ASRHUB_URL": "http://x"})
    assert r.returncode == 0, r.stderr
    shown = yaml.safe_load(r.stdout)
    assert shown["limits"]["max_sessions"] == 4 and shown["logging"]["json"] is True
    assert shown["server"]["auth"]["api_keys"][0]["key"] == "***" and "sk-live-123" not in r.stdout
    assert "valid" in r.stderr
    bad = tmp_path / "bad.yaml"
    bad.write_text("pipeline:\n  vad:\n    silense_ms: 300\n")
    r = _cli("config", "check", str(bad))
    assert r.returncode == 2 and "unknown key 'pipeline.vad.silense_ms'" in r.stderr
    r = _cli("config", "check", env={"ASRHUB_CONFIG": str(good)})  # no FILE: ASRHUB_CONFIG
    assert r.returncode == 0 and str(good) in r.stderr


def test_json_formatter_one_object_per_line() -> None:
    rec = logging.LogRecord("asrhub.sessions", logging.INFO, __file__, 1, "session ended: %s", ("x",), None)
    rec.session_id = "abc"
    rec.audio_s = 1.5
    line = JsonFormatter().format(rec)
    assert "\n" not in line
    obj = json.loads(line)
    assert obj["msg"] == "session ended: x" and obj["level"] == "INFO" and obj["logger"] == "asrhub.sessions"
    assert obj["session_id"] == "abc" and obj["audio_s"] == 1.5 and obj["ts"].endswith("+00:00")
    try:
        raise ValueError("boom\nsecond line")
    except ValueError:
        import sys as _sys
        rec2 = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed", None, _sys.exc_info())
    line2 = JsonFormatter().format(rec2)
    assert "\n" not in line2 and "ValueError: boom" in json.loads(line2)["exc"]


def test_token_redaction() -> None:
    assert redact_url("/v1/ws?token=sk-1&x=2") == "/v1/ws?token=***&x=2"
    assert redact_url("/socket.io/?EIO=4&transport=websocket&token=abc") == \
        "/socket.io/?EIO=4&transport=websocket&token=***"
    assert redact_url("/v1/providers") == "/v1/providers"
    rec = logging.LogRecord("uvicorn.access", logging.INFO, __file__, 1, '%s - "%s %s HTTP/%s" %d',
                            ("127.0.0.1:5", "GET", "/v1/ws?token=sk-secret", "1.1", 101), None)
    RedactTokens().filter(rec)
    assert "sk-secret" not in rec.getMessage() and "token=***" in rec.getMessage()
