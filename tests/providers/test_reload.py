"""Issue 4: the config file is watched. Switching `providers.default` (and pipeline defaults) in the YAML
while the hub runs changes what the next session gets, without a restart; a bad edit is logged and the
running config stays."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import httpx
import numpy as np
import pytest

from tests.support import (
    HubProcess,
    base_config,
    client_stream,
    clip,
    final_text,
    load_pcm16,
    running,
    until_changed,
)

ONE = """
providers:
  default: faster_whisper
  instances:
    faster_whisper:
      model: bundled:tiny.en
      language: en
"""

TWO = """
pipeline:
  vad:
    silence_ms: 600
providers:
  default: greedy
  instances:
    faster_whisper:
      model: bundled:tiny.en
      language: en
    greedy:
      type: faster_whisper
      model: bundled:tiny.en
      language: en
      beam_size: 1
"""


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HubProcess]:
    yield from running(base_config(providers=ONE), tmp_path_factory.mktemp("reload"))


def _started(h: HubProcess, pcm: bytes | None = None) -> tuple[dict, list[dict]]:
    audio = pcm if pcm is not None else np.zeros(8000, dtype=np.int16).tobytes()
    events = asyncio.run(client_stream(h.http, audio, realtime=0, timeout=60))
    return next(e for e in events if e["type"] == "session.started"), events


def _providers(h: HubProcess) -> dict[str, dict]:
    return {r["name"]: r for r in httpx.get(h.http + "/v1/providers", timeout=5).json()}


def _wait(h: HubProcess, pred, timeout: float = 20.0) -> None:  # noqa: ANN001
    """Until pred holds, checked after each line the hub logs (a reload or a rejection is logged)."""
    until_changed(h.log, pred, timeout=timeout, what="the reload", proc=h.proc, own=("GET /v1/providers",))


def test_switching_the_default_in_the_file_changes_the_next_session(hub: HubProcess) -> None:
    first, _ = _started(hub)
    assert first["provider"] == "faster_whisper"
    assert first["config"]["vad"]["silence_ms"] != 600

    hub.config.write_text(base_config(providers=TWO))
    _wait(hub, lambda: _providers(hub).get("greedy", {}).get("default") is True)
    assert _providers(hub)["greedy"]["status"] == "available"   # the new provider was loaded live

    pcm = load_pcm16(clip("en_libri_1221").path).tobytes()
    second, events = _started(hub, pcm)
    assert second["provider"] == "greedy"
    assert second["config"]["vad"]["silence_ms"] == 600          # pipeline defaults too
    assert "hope" in final_text(events).lower()
    assert [e["provider"] for e in events if e["type"] == "transcript.final"] == ["greedy"]
    assert hub.alive()


def test_a_bad_edit_keeps_the_running_config(hub: HubProcess) -> None:
    before = _providers(hub)
    hub.config.write_text(base_config(providers=TWO) + "\nproviders:\n  default: greedy\n  bogus_key: 1\n")
    _wait(hub, lambda: "rejected" in hub.log.read_text())
    hub.config.write_text(base_config(providers=TWO).replace("type: faster_whisper", "type: no_such_engine"))
    _wait(hub, lambda: hub.log.read_text().count("rejected") >= 2)
    assert _providers(hub) == before
    third, _ = _started(hub)
    assert third["provider"] == "greedy"
    assert hub.alive()


def test_removing_a_provider_retires_it_and_sessions_follow_the_file(hub: HubProcess) -> None:
    hub.config.write_text(base_config(providers=ONE))
    _wait(hub, lambda: "greedy" not in _providers(hub))
    fourth, _ = _started(hub)
    assert fourth["provider"] == "faster_whisper"
    assert fourth["config"]["vad"]["silence_ms"] != 600   # back to the embedded default
