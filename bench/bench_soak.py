"""Soak: cycling sessions for a long time (issue 7).

    .venv/bin/python -m bench.bench_soak --minutes 30 --concurrency 4

`concurrency` clients loop: start, stream a manifest clip at 2x real time, stop, read to
session.ended; every 10th session instead drops its connection mid-stream (client gone) and every
15th sends a bad frame (provoked error). Every minute the hub's RSS and live session count are
sampled. Reported: RSS growth from minute 2 to the end, sessions left after the run (leaks), and
errors other than the provoked ones.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from pathlib import Path

import httpx
import websockets

from bench.bench_capacity import rss_kb
from bench.common import SPEECH_ROOT, machine
from tests.support import HubProcess, base_config, english, load_pcm16


async def client(url: str, clips: list[bytes], deadline: float, idx: int, stats: dict[str, int]) -> None:
    n = idx
    while time.monotonic() < deadline:
        n += 1
        pcm = clips[n % len(clips)]
        mode = "drop" if n % 10 == 0 else "bad" if n % 15 == 0 else "normal"
        try:
            async with asyncio.timeout(180), websockets.connect(url, max_size=None) as ws:
                await ws.send(json.dumps({"type": "start"}))
                first = json.loads(await asyncio.wait_for(ws.recv(), 30))
                if first["type"] == "error":  # refused (admission under load): back off, try again
                    stats["refused"] += 1
                    await asyncio.sleep(1)
                    continue
                for i in range(0, len(pcm), 3200):
                    await ws.send(pcm[i:i + 3200])
                    await asyncio.sleep(0.05)
                    if mode == "drop" and i > len(pcm) // 2:
                        break
                    if mode == "bad" and i == 3200 * 3:
                        await ws.send(b"\x01")  # odd byte count: a provoked invalid_audio
                if mode == "drop":
                    stats["dropped"] += 1
                    continue
                await ws.send(json.dumps({"type": "stop"}))
                async for msg in ws:  # the hub closes after session.ended
                    ev = json.loads(msg)
                    if ev["type"] == "error":
                        if mode == "bad" and ev["code"] == "invalid_audio":
                            stats["provoked_errors"] += 1
                        else:
                            stats["unexpected_errors"] += 1
                    elif ev["type"] == "transcript.final":
                        stats["finals"] += 1
                stats["sessions"] += 1
        except (OSError, websockets.WebSocketException, TimeoutError):
            stats["connection_errors"] += 1


async def run(minutes: float, concurrency: int) -> None:
    hub = HubProcess(base_config(), Path(tempfile.mkdtemp())).start()
    assert hub.proc is not None
    clips = [load_pcm16(c.path).tobytes() for c in english(SPEECH_ROOT) if c.seconds < 12]
    stats = {"refused": 0, "sessions": 0, "finals": 0, "dropped": 0, "provoked_errors": 0, "unexpected_errors": 0,
             "connection_errors": 0}
    deadline = time.monotonic() + minutes * 60
    samples: list[tuple[float, int, int]] = []

    async def sampler() -> None:
        t0 = time.monotonic()
        while time.monotonic() < deadline:
            live = (await asyncio.to_thread(httpx.get, hub.http + "/readyz")).json()["sessions"]
            samples.append(((time.monotonic() - t0) / 60, rss_kb(hub.proc.pid), live))  # type: ignore[union-attr]
            await asyncio.sleep(30)

    try:
        await asyncio.gather(sampler(), *(client(hub.ws, clips, deadline, i, stats) for i in range(concurrency)))
        await asyncio.sleep(8)  # resume window (5 s in the test config) for dropped clients to expire
        leaked = (await asyncio.to_thread(httpx.get, hub.http + "/readyz")).json()["sessions"]
        rss_end = rss_kb(hub.proc.pid)
    finally:
        hub.stop()
    ref = next((r for m, r, _ in samples if m >= 5), samples[-1][1])  # after warm-up (allocator, model caches)
    print(f"machine: {machine()}; {minutes:.0f} min, {concurrency} concurrent clients")
    print("minute, RSS KB, live sessions: " + "; ".join(f"{m:.0f}: {r} / {n}" for m, r, n in samples))
    print(f"RSS at minute 5: {ref} KB, at the end: {rss_end} KB, growth {100 * (rss_end - ref) / ref:.1f}%")
    print(f"sessions completed {stats['sessions']}, refused under load {stats['refused']}, dropped mid-stream {stats['dropped']}, finals {stats['finals']}")
    print(f"provoked errors {stats['provoked_errors']}, unexpected errors {stats['unexpected_errors']}, "
          f"connection errors {stats['connection_errors']}, sessions left after the run: {leaked}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--minutes", type=float, default=30)
    ap.add_argument("--concurrency", type=int, default=4)
    a = ap.parse_args()
    asyncio.run(run(a.minutes, a.concurrency))


if __name__ == "__main__":
    main()
