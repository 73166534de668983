"""Issue 14: what an operator sees of a real hub. JSON log lines, one line per session end, no API key
in any log line, Prometheus names (process/python collectors, build info, `_total` counters, no `from_`),
request metrics per HTTP route template and per gRPC method, and CLI flags over ASRHUB_* env."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import grpc
import httpx
import pytest

from tests.support import HubProcess, base_config, clip, final_text, load_pcm16, wer, ws_stream

KEY = "sk-observe-7f3a9c"
CONFIG = base_config(obs=f"server:\n  auth:\n    api_keys:\n      - {{key: {KEY}, name: obs-key, max_sessions: 1}}\n"
                     + "logging:\n  json: true\n")
AUTH = {"Authorization": f"Bearer {KEY}"}


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HubProcess]:
    # CLI flags beat ASRHUB_* env: the env asks for WARNING and an unusable gRPC port, the flags for INFO and
    # a free one; the session line (INFO) and the gRPC calls below only work if the flags won.
    h = HubProcess(CONFIG, tmp_path_factory.mktemp("obs"), env={"ASRHUB_LOGGING__LEVEL": "WARNING",
                                                                 "ASRHUB_SERVER__GRPC_PORT": "1",
                                                                 "ASRHUB_URL": "http://127.0.0.1:1"},
                   extra_args=["--log-level", "info"])
    h.start()
    yield h
    h.stop()


@pytest.fixture(scope="module")
def traffic(hub: HubProcess) -> dict[str, Any]:
    """One WebSocket session with the key in ?token=, REST calls with and without the key, gRPC calls."""
    import asyncio

    from asrhub.wire import grpc_gen

    c = clip("en_libri_1089-134691")
    pcm = load_pcm16(c.path).tobytes()
    events = asyncio.run(ws_stream(hub.ws + f"?token={KEY}", pcm, realtime=0))
    assert httpx.get(hub.http + f"/v1/providers?token={KEY}").status_code == 200
    assert httpx.get(hub.http + "/v1/providers").status_code == 401
    assert httpx.delete(hub.http + "/v1/sessions/0123456789abcdef", headers=AUTH).status_code == 404
    pb, pb_grpc = grpc_gen.load()

    async def grpc_calls() -> None:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{hub.grpc_port}") as ch:
            stub = pb_grpc.AsrHubStub(ch)
            md = (("authorization", f"Bearer {KEY}"),)
            res = await stub.Recognize(pb.RecognizeRequest(audio=c.path.read_bytes()), timeout=60, metadata=md)
            assert wer([c.transcript], [res.text]) < 0.2
            with pytest.raises(grpc.aio.AioRpcError):
                await stub.Recognize(pb.RecognizeRequest(audio=b"not audio"), timeout=60, metadata=md)

    asyncio.run(grpc_calls())

    async def refused_second_session() -> dict[str, Any]:
        """The key allows one session: a second one while the first is open is refused."""
        import websockets
        start = json.dumps({"type": "start", "audio": {"encoding": "pcm_s16le", "sample_rate": 16000}})
        async with websockets.connect(hub.ws + f"?token={KEY}") as first:
            await first.send(start)
            assert json.loads(await first.recv())["type"] == "session.started"
            async with websockets.connect(hub.ws + f"?token={KEY}") as second:
                await second.send(start)
                answer: dict[str, Any] = json.loads(await second.recv())
            await first.send(json.dumps({"type": "stop"}))
            async for msg in first:
                if json.loads(msg)["type"] == "session.ended":
                    break
        return answer

    refusal = asyncio.run(refused_second_session())
    assert refusal["type"] == "error" and refusal["code"] == "too_many_sessions", refusal
    metrics = httpx.get(hub.http + "/metrics", headers=AUTH).text
    return {"events": events, "clip": c, "metrics": metrics}


def _log_objects(hub: HubProcess) -> list[dict[str, Any]]:
    return [json.loads(line) for line in hub.log.read_text().splitlines() if line.startswith("{")]


def test_logs_are_json_lines_without_keys(hub: HubProcess, traffic: dict[str, Any]) -> None:
    text = hub.log.read_text()
    assert KEY not in text, "an API key reached the log"
    plain = [line for line in text.splitlines() if line.strip() and not line.startswith("{")]
    assert not plain, f"lines that are not JSON objects: {plain[:5]}"
    objs = _log_objects(hub)
    assert len(objs) >= 5
    uvicorn_lines = [o for o in objs if o["logger"].startswith("uvicorn")]
    assert any("token=***" in o["msg"] for o in uvicorn_lines), "the ?token= request was not logged (redacted)"
    assert any(o["logger"] == "uvicorn.access" and "/v1/providers" in o["msg"] for o in uvicorn_lines)
    assert all({"ts", "level", "logger", "msg"} <= set(o) for o in objs)


def test_one_log_line_per_session_end(hub: HubProcess, traffic: dict[str, Any]) -> None:
    sid = next(e for e in traffic["events"] if e["type"] == "session.started")["session_id"]
    assert wer([traffic["clip"].transcript], [final_text(traffic["events"])]) < 0.2
    ends = [o for o in _log_objects(hub) if o["logger"] == "asrhub.sessions" and o.get("session_id") == sid]
    assert len(ends) == 1, ends
    end = ends[0]
    assert end["key_id"] == "obs-key" and end["transport"] == "websocket" and end["provider"] == "faster_whisper"
    assert end["reason"] == "stop" and abs(end["audio_s"] - traffic["clip"].seconds) < 0.2
    assert end["finals"] >= 1 and end["duration_s"] > 0


def _sample(metrics: str, name: str, **labels: str) -> float | None:
    for line in metrics.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            got = dict(re.findall(r'(\w+)="([^"]*)"', line.split(" ")[0] if "{" not in line else line[:line.rindex("}")]))
            if all(got.get(k) == v for k, v in labels.items()):
                return float(line.rsplit(" ", 1)[1])
    return None


def test_prometheus_names_and_collectors(traffic: dict[str, Any]) -> None:
    m = traffic["metrics"]
    assert "from_" not in m
    assert re.search(r"^# TYPE asrhub_scheduler_dropped_partials(_total)? counter$", m, re.M)
    assert _sample(m, "asrhub_scheduler_dropped_partials_total") is not None
    assert "asrhub_scheduler_dropped_partials " not in m  # no longer a gauge sample without _total
    assert re.search(r"^# TYPE asrhub_failovers(_total)? counter$", m, re.M)
    assert _sample(m, "asrhub_build_info", version="0.1.0") == 1.0
    assert _sample(m, "asrhub_sessions_refused_total", reason="key_sessions") == 1
    for name in ("process_resident_memory_bytes", "process_cpu_seconds_total", "python_info",
                 "python_gc_collections_total"):
        assert _sample(m, name) is not None, name
    for line in m.splitlines():  # every counter sample ends in _total (or is a histogram/info series)
        if line.startswith("# TYPE ") and line.endswith(" counter"):
            name = line.split()[2].removesuffix("_total")
            samples = re.findall(rf"^{name}(\w*)[{{ ]", m, re.M)
            assert all(s in ("_total", "_created") for s in samples), (name, samples)


def test_request_metrics_per_route_and_method(traffic: dict[str, Any]) -> None:
    m = traffic["metrics"]
    assert _sample(m, "asrhub_http_requests_total", route="/v1/providers", method="GET", status="200") == 1
    assert _sample(m, "asrhub_http_requests_total", route="/v1/providers", method="GET", status="401") == 1
    assert _sample(m, "asrhub_http_requests_total", route="/v1/sessions/{session_id}", method="DELETE",
                   status="404") == 1
    assert "0123456789abcdef" not in m, "a raw path leaked into a label"
    assert (_sample(m, "asrhub_http_request_duration_seconds_count", route="/v1/providers", method="GET") or 0) >= 2
    assert _sample(m, "asrhub_grpc_requests_total", method="asrhub.v1.AsrHub/Recognize", code="OK") == 1
    assert _sample(m, "asrhub_grpc_requests_total", method="asrhub.v1.AsrHub/Recognize",
                   code="INVALID_ARGUMENT") == 1
    assert _sample(m, "asrhub_grpc_request_duration_seconds_count", method="asrhub.v1.AsrHub/Recognize") == 2
