"""A pipeline operator the config asks for but the hub cannot load is reported like an unavailable default
provider: `asrhub config check` exits 1 naming it, the hub logs one WARNING with the fix, `/readyz`
answers 503 `operator_unavailable` naming it, and a session is refused with `operator_unavailable` and the
install command scripts/install.sh uses (not `provider_unavailable`). The operators:
- the Silero VAD (`pipeline.vad.kind: silero`) without the `silero-vad` package;
- the semantic turn model (`pipeline.turn.mode: semantic`) without `pipecat-ai`, whose wheel holds the
  model file (core.bundled finds it through find_spec);
- the wake word gate (`pipeline.wakeword.enabled: true`) without `pocketsphinx` (not in `make run`'s .venv:
  it was `provider_unavailable` with no install command, and /readyz said ready)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets

from tests.missing_packages import env_without
from tests.support import REPO
from tests.test_cli import ServeLog


@dataclass(frozen=True)
class Missing:
    name: str                 # how the hub names the operator ("silero VAD", "turn model")
    setting: str              # the config line that asks for it, as config check quotes it
    package: str              # the import hidden from the hub
    install: str              # the install command the hub gives
    config: tuple[str, str]   # (text in config/config.yaml, its replacement)
    start: dict[str, Any] = field(default_factory=dict)  # what the session's start adds
    words: str = ""           # a word the refusal has besides the install command


SILERO = Missing("silero VAD", "pipeline.vad.kind: silero", "silero_vad", "pip install --no-deps silero-vad==6.2.3",
                 ("    kind: webrtc\n", "    kind: silero\n"), words="silero-vad")
TURN = Missing("turn model", "pipeline.turn.mode: semantic", "pipecat",
               "pip install 'asrhub[turn]' && pip install --no-deps pipecat-ai==1.14.0",
               ("pipeline:\n", "pipeline:\n  turn:\n    mode: semantic\n"), start={"turn": {"mode": "semantic"}},
               words="turn model")

WAKE = Missing("wake word", "pipeline.wakeword.enabled: true", "pocketsphinx", "pip install 'asrhub[wakeword]'",
               ("pipeline:\n", "pipeline:\n  wakeword:\n    enabled: true\n"), words="wake word")


@pytest.fixture(scope="module", params=[SILERO, TURN, WAKE], ids=lambda m: m.package)
def missing(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
            ) -> tuple[Missing, Path, dict[str, str]]:
    m: Missing = request.param
    tmp = tmp_path_factory.mktemp(f"no-{m.package}")
    text = (REPO / "config" / "config.yaml").read_text()
    old, new = m.config
    assert text.count(old) >= 1 and new not in text
    config = tmp / "config.yaml"
    config.write_text(text.replace(old, new, 1))
    return m, config, env_without(tmp, m.package)


@pytest.fixture(scope="module")
def hub(missing: tuple[Missing, Path, dict[str, str]]) -> Iterator[tuple[Missing, ServeLog]]:
    m, config, env = missing
    serve = ServeLog(config, config.parent, env)
    try:
        serve.until("Uvicorn running on")
        yield m, serve
    finally:
        serve.proc.terminate()
        serve.proc.wait(30)


def test_config_check_exits_1_naming_the_operator(missing: tuple[Missing, Path, dict[str, str]]) -> None:
    m, config, env = missing
    r = subprocess.run([sys.executable, "-m", "asrhub", "config", "check", str(config)], capture_output=True,
                       text=True, env=env, cwd=config.parent, timeout=300)
    assert r.returncode == 1, r.stderr
    assert f"{m.name} ({m.setting}) is unavailable" in r.stderr and m.install in r.stderr, r.stderr


def test_readyz_is_503_naming_the_operator(hub: tuple[Missing, ServeLog]) -> None:
    m, serve = hub
    r = httpx.get(f"http://127.0.0.1:{serve.port}/readyz", timeout=10)
    assert r.status_code == 503, r.text
    body = r.json()
    assert body["ready"] is False and body["reason"] == "operator_unavailable", body
    assert m.name in body["detail"] and m.install in body["detail"], body
    warnings = [o for o in serve.seen if o["level"] == "WARNING" and m.name in o["msg"]]
    assert len(warnings) == 1 and m.install in warnings[0]["msg"], serve.seen
    assert not [o for o in serve.seen if o["level"] == "ERROR"], serve.seen


def test_a_session_is_refused_naming_the_operator(hub: tuple[Missing, ServeLog]) -> None:
    m, serve = hub

    async def start() -> dict:
        async with websockets.connect(f"ws://127.0.0.1:{serve.port}/v1/ws") as ws:
            await ws.send(json.dumps({"type": "start", **m.start, "audio": {"encoding": "pcm_s16le",
                                                                            "sample_rate": 16000, "channels": 1}}))
            return dict(json.loads(await asyncio.wait_for(ws.recv(), 60)))

    event = asyncio.run(start())
    assert event["type"] == "error" and event["code"] == "operator_unavailable", event
    assert m.words in event["message"] and m.install in event["message"], event
