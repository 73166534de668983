"""Issue 24: a hub whose default or routed provider is unavailable is not ready, says which and how to
fix it (the /readyz body and a WARNING per provider), and counts only what sessions can reach."""

from __future__ import annotations

import logging

import pytest

from asrhub.api.rest import readiness
from asrhub.core.config import parse_config
from asrhub.hub import Hub

MISSING = "/nonexistent/asrhub-readiness-model"


async def test_unavailable_default_and_routed_providers_make_the_hub_not_ready(
        caplog: pytest.LogCaptureFixture) -> None:
    cfg = parse_config({"providers": {
        "default": "fw",
        "routes": [{"language": "ko", "provider": "vosk"}, {"language": "de", "provider": "fw"}],
        "instances": {
            "fw": {"type": "faster_whisper", "model": MISSING},
            "vosk": {"enabled": False},
            "spare": {"type": "faster_whisper", "model": MISSING},  # nothing routes to it: not counted
        }},
        "server": {"grpc_enabled": False, "watch_config": False}})
    hub = Hub(cfg)
    with caplog.at_level(logging.WARNING, logger="asrhub.engine.provider_check"):
        await hub.start()
    try:
        r = readiness(hub)
        assert r.ready is False and r.reason == "provider_unavailable"
        assert r.detail is not None
        parts = r.detail.split("; provider ")
        assert len(parts) == 2, r.detail
        assert parts[0].startswith("provider 'fw' (the default provider) is unavailable") and MISSING in parts[0]
        assert "fix: correct providers.instances.fw.model" in parts[0]
        assert parts[1].startswith("'vosk' (routed to by providers.routes) is unavailable: disabled")
        assert "fix: set providers.instances.vosk.enabled: true" in parts[1]
        assert "spare" not in r.detail
        warned = [rec.getMessage() for rec in caplog.records if rec.levelno == logging.WARNING]
        assert len(warned) == 2 and "'fw'" in warned[0] and "'vosk'" in warned[1], warned
    finally:
        await hub.stop()
