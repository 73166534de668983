"""A turn model the pipeline is configured with (`pipeline.turn.mode: semantic`) but cannot load (the
pipecat-ai package, whose wheel holds the model file, missing) is reported like the Silero VAD
(tests/test_vad_unavailable.py): `asrhub config check` exits 1 naming it, the hub logs one WARNING with the
fix, `/readyz` answers 503 `operator_unavailable` naming it, and a session asking for semantic turns is
refused with `operator_unavailable` and the install command scripts/install.sh uses."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import websockets

from tests.missing_packages import env_without
from tests.support import REPO
from tests.test_vad_unavailable import Serve

INSTALL = "pip install 'asrhub[turn]' && pip install --no-deps pipecat-ai==1.14.0"


def _semantic_config(tmp: Path) -> Path:
    text = (REPO / "config" / "config.yaml").read_text()
    assert "pipeline:\n" in text and "  turn:" not in text
    path = tmp / "semantic.yaml"
    path.write_text(text.replace("pipeline:\n", "pipeline:\n  turn:\n    mode: semantic\n", 1))
    return path


@pytest.fixture(scope="module")
def no_pipecat(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    tmp = tmp_path_factory.mktemp("no-pipecat")
    return _semantic_config(tmp), env_without(tmp, "pipecat")  # core.bundled finds the file via find_spec


@pytest.fixture(scope="module")
def hub(no_pipecat: tuple[Path, dict[str, str]]) -> Iterator[Serve]:
    serve = Serve(*no_pipecat)
    try:
        serve.until("Uvicorn running on")
        yield serve
    finally:
        serve.proc.terminate()
        serve.proc.wait(30)


def test_config_check_exits_1_naming_the_turn_model(no_pipecat: tuple[Path, dict[str, str]]) -> None:
    config, env = no_pipecat
    r = subprocess.run([sys.executable, "-m", "asrhub", "config", "check", str(config)], capture_output=True,
                       text=True, env=env, cwd=config.parent, timeout=300)
    assert r.returncode == 1, r.stderr
    assert "turn model (pipeline.turn.mode: semantic) is unavailable" in r.stderr and INSTALL in r.stderr, r.stderr


def test_readyz_is_503_naming_the_turn_model(hub: Serve) -> None:
    r = httpx.get(f"http://127.0.0.1:{hub.port}/readyz", timeout=10)
    assert r.status_code == 503, r.text
    body = r.json()
    assert body["ready"] is False and body["reason"] == "operator_unavailable", body
    assert "turn model" in body["detail"] and INSTALL in body["detail"], body
    warnings = [o for o in hub.seen if o["level"] == "WARNING" and "turn model" in o["msg"]]
    assert len(warnings) == 1 and INSTALL in warnings[0]["msg"], hub.seen
    assert not [o for o in hub.seen if o["level"] == "ERROR"], hub.seen


def test_a_semantic_session_is_refused_naming_the_turn_model(hub: Serve) -> None:
    async def start() -> dict:
        async with websockets.connect(f"ws://127.0.0.1:{hub.port}/v1/ws") as ws:
            await ws.send(json.dumps({"type": "start", "turn": {"mode": "semantic"},
                                      "audio": {"encoding": "pcm_s16le", "sample_rate": 16000, "channels": 1}}))
            return dict(json.loads(await asyncio.wait_for(ws.recv(), 60)))

    event = asyncio.run(start())
    assert event["type"] == "error" and event["code"] == "operator_unavailable", event
    assert "turn model" in event["message"] and INSTALL in event["message"], event
