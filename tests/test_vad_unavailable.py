"""A Silero VAD the pipeline is configured with but cannot load (the `silero-vad` package missing) is
reported like an unavailable default provider: `asrhub config check` exits 1 naming it, the hub logs one
WARNING with the fix, `/readyz` answers 503 `operator_unavailable` naming it, and a session is refused
with `operator_unavailable` and the install command scripts/install.sh uses (not `provider_unavailable`)."""

from __future__ import annotations

import asyncio
import json
import queue
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import websockets

from tests.missing_packages import env_without
from tests.support import REPO, free_port

INSTALL = "pip install --no-deps silero-vad==6.2.3"


def _silero_config(tmp: Path) -> Path:
    text = (REPO / "config" / "config.yaml").read_text()
    assert "    kind: webrtc\n" in text
    path = tmp / "silero.yaml"
    path.write_text(text.replace("    kind: webrtc\n", "    kind: silero\n", 1))
    return path


class Serve:
    """`asrhub serve --log-json` without silero-vad; its log lines are read as they come."""

    def __init__(self, config: Path, env: dict[str, str]) -> None:
        self.port = free_port()
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[dict] = []
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "asrhub", "serve", "--config", str(config), "--port", str(self.port),
             "--grpc-port", str(free_port()), "--log-json"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            text=True, env=env, cwd=config.parent)
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.put(line)
        self.lines.put("")

    def until(self, msg_prefix: str, timeout: float = 120) -> None:
        while True:
            line = self.lines.get(timeout=timeout)
            assert line, f"the hub exited ({self.proc.wait()}) before '{msg_prefix}': {self.seen}"
            obj = json.loads(line)
            self.seen.append(obj)
            if obj["msg"].startswith(msg_prefix):
                return


@pytest.fixture(scope="module")
def no_silero(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    tmp = tmp_path_factory.mktemp("no-silero")
    return _silero_config(tmp), env_without(tmp, "silero_vad")


@pytest.fixture(scope="module")
def hub(no_silero: tuple[Path, dict[str, str]]) -> Iterator[Serve]:
    serve = Serve(*no_silero)
    try:
        serve.until("Uvicorn running on")
        yield serve
    finally:
        serve.proc.terminate()
        serve.proc.wait(30)


def test_config_check_exits_1_naming_the_vad(no_silero: tuple[Path, dict[str, str]]) -> None:
    config, env = no_silero
    r = subprocess.run([sys.executable, "-m", "asrhub", "config", "check", str(config)], capture_output=True,
                       text=True, env=env, cwd=config.parent, timeout=300)
    assert r.returncode == 1, r.stderr
    assert "silero VAD (pipeline.vad.kind: silero) is unavailable" in r.stderr and INSTALL in r.stderr, r.stderr


def test_readyz_is_503_naming_the_vad(hub: Serve) -> None:
    r = httpx.get(f"http://127.0.0.1:{hub.port}/readyz", timeout=10)
    assert r.status_code == 503, r.text
    body = r.json()
    assert body["ready"] is False and body["reason"] == "operator_unavailable", body
    assert "silero VAD" in body["detail"] and INSTALL in body["detail"], body
    warnings = [o for o in hub.seen if o["level"] == "WARNING" and "silero VAD" in o["msg"]]
    assert len(warnings) == 1 and INSTALL in warnings[0]["msg"], hub.seen
    assert not [o for o in hub.seen if o["level"] == "ERROR"], hub.seen


def test_a_session_is_refused_naming_the_operator(hub: Serve) -> None:
    async def start() -> dict:
        async with websockets.connect(f"ws://127.0.0.1:{hub.port}/v1/ws") as ws:
            await ws.send(json.dumps({"type": "start", "audio": {"encoding": "pcm_s16le", "sample_rate": 16000,
                                                                 "channels": 1}}))
            return dict(json.loads(await asyncio.wait_for(ws.recv(), 60)))

    event = asyncio.run(start())
    assert event["type"] == "error" and event["code"] == "operator_unavailable", event
    assert "silero-vad" in event["message"] and INSTALL in event["message"], event
