"""Middleware capacity: N WebSocket streams of real-time silence (VAD-gated, no inference).

    .venv/bin/python -m bench.bench_capacity --streams 250 500 1000 --seconds 30 --chunk-ms 100

For each N: every stream connects, starts, sends `chunk_ms` of low-level noise per `chunk_ms` for
`seconds`, then stops. Reported: hub RSS per session (RSS with N connected minus idle RSS, / N), hub
CPU (% of one core) while streaming, how late the senders ran (a stream "falls behind" if its last
chunk went out > 1 s late), and stop -> session.ended time (p95).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import websockets

from bench.common import machine, pct
from tests.support import HubProcess, base_config


def rss_kb(pid: int) -> int:
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def cpu_s(pid: int) -> float:
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def stream(url: str, seconds: float, chunk_ms: int, ready: asyncio.Event, go: asyncio.Event,
                 out: dict[str, list[float]], counter: list[int], n: int) -> None:
    rng = np.random.default_rng(len(out["late"]) + counter[0])
    chunk = (rng.normal(0, 30, 16 * chunk_ms)).astype("<i2").tobytes()  # ~-60 dBFS noise
    async with websockets.connect(url, max_size=None, compression=None) as ws:
        await ws.send(json.dumps({"type": "start", "interim_results": False}))
        json.loads(await ws.recv())
        counter[0] += 1
        if counter[0] == n:
            ready.set()
        await go.wait()
        t0 = time.perf_counter()
        steps = int(seconds * 1000 / chunk_ms)
        late = 0.0
        for i in range(steps):
            due = t0 + i * chunk_ms / 1000
            late = max(late, time.perf_counter() - due)
            await ws.send(chunk)
            delay = due + chunk_ms / 1000 - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
        t_stop = time.perf_counter()
        await ws.send(json.dumps({"type": "stop"}))
        async for msg in ws:
            if json.loads(msg)["type"] == "session.ended":
                out["ended"].append((time.perf_counter() - t_stop) * 1000)
        out["late"].append(late * 1000)


async def run(streams: list[int], seconds: float, chunk_ms: int) -> None:
    hub = HubProcess(base_config() + "\nlimits:\n  max_sessions: 5000\n  max_sessions_per_key: 5000\n",
                     Path(tempfile.mkdtemp())).start()
    assert hub.proc is not None
    pid = hub.proc.pid
    print(f"machine: {machine()}; {seconds:.0f} s per stream, {chunk_ms} ms chunks, client in one process")
    print("| streams | RSS per session (KB) | hub CPU (% of a core) | sender lateness p95 / max (ms) | "
          "streams > 1 s late | stop -> ended p95 (ms) |")
    print("|---|---|---|---|---|---|")
    try:
        for n in streams:
            await asyncio.sleep(2)
            base = rss_kb(pid)
            ready, go = asyncio.Event(), asyncio.Event()
            out: dict[str, list[float]] = {"late": [], "ended": []}
            counter = [0]
            tasks = [asyncio.create_task(stream(hub.ws, seconds, chunk_ms, ready, go, out, counter, n)) for _ in range(n)]
            await asyncio.wait_for(ready.wait(), 300)
            c0, t0 = cpu_s(pid), time.perf_counter()
            go.set()
            await asyncio.sleep(seconds / 2)
            per_session = (rss_kb(pid) - base) / n
            await asyncio.gather(*tasks)
            cpu = (cpu_s(pid) - c0) / (time.perf_counter() - t0) * 100
            behind = sum(1 for x in out["late"] if x > 1000)
            print(f"| {n} | {per_session:.0f} | {cpu:.0f} | {pct(out['late'], 95):.0f} / {max(out['late']):.0f} | "
                  f"{behind} | {pct(out['ended'], 95):.0f} |", flush=True)
    finally:
        hub.stop()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--streams", type=int, nargs="+", default=[250, 500, 1000])
    ap.add_argument("--seconds", type=float, default=30)
    ap.add_argument("--chunk-ms", type=int, default=100)
    a = ap.parse_args()
    asyncio.run(run(a.streams, a.seconds, a.chunk_ms))


if __name__ == "__main__":
    main()
