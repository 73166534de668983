"""Shared bench helpers: stream a file to a hub at real-time pace and time every event client-side.

The streaming goes through the project's own client (asrhub.client, WebSocket transport); an event's
arrival time is when the client hands it to the bench (parsed into its typed model)."""

from __future__ import annotations

import asyncio
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from asrhub.client import StartSession, WebSocketClient
from tests.support import REPO, SPEECH, paced

_SHARED_SPEECH = REPO.parent / "shared" / "data" / "speech"


def _speech_root() -> Path:
    """The larger shared speech set beside the checkout when it exists, else the suite's own copy."""
    if (_SHARED_SPEECH / "MANIFEST.tsv").exists():
        return _SHARED_SPEECH
    print(f"bench: {_SHARED_SPEECH} not found; using the test copy in {SPEECH} (the same main set, "
          "without the harder varied/ clips)", file=sys.stderr)
    return SPEECH


#: Where the benchmarks read speech (pass as `root=` to tests.support.english()/clip()).
SPEECH_ROOT = _speech_root()


@dataclass
class Timed:
    events: list[dict[str, Any]] = field(default_factory=list)
    recv: list[float] = field(default_factory=list)       # perf_counter at arrival, per event
    sent: list[tuple[int, float]] = field(default_factory=list)  # (audio ms sent so far, perf_counter)
    stop_at: float = 0.0

    def sent_time(self, offset_ms: float) -> float:
        for ms, t in self.sent:
            if ms >= offset_ms:
                return t
        return self.sent[-1][1]


def http_base(url: str) -> str:
    """The hub's HTTP base URL from its base or WebSocket URL (ws://host:port/v1/ws)."""
    base = url.removesuffix("/v1/ws").rstrip("/")
    return "http" + base[2:] if base.startswith("ws") else base


async def stream_timed(url: str, pcm: bytes, *, start: dict[str, Any] | None = None, chunk_ms: int = 20,
                       realtime: float = 1.0, trailing_silence_ms: int = 0, api_key: str | None = None) -> Timed:
    """Stream pcm_s16le 16 kHz at `realtime` pace in `chunk_ms` messages, then stop; every event with its
    arrival time, and the send time of every chunk."""
    out = Timed()
    opts = StartSession.model_validate({"audio": {"encoding": "pcm_s16le", "sample_rate": 16000, "channels": 1},
                                        **(start or {})})
    pcm = pcm + b"\x00\x00" * (16 * trailing_silence_ms)
    step = 32 * chunk_ms
    session = await WebSocketClient(http_base(url), api_key=api_key).session(opts)

    async def reader() -> None:
        async for ev in session:
            out.recv.append(time.perf_counter())
            out.events.append(ev.to_dict())

    task = asyncio.create_task(reader())
    try:
        await send_timed(session.send, pcm, step, out, realtime)
        out.stop_at = time.perf_counter()
        await session.stop()
        await asyncio.wait_for(task, 300)
    finally:
        task.cancel()
        await session.close()
    return out


async def send_timed(send: Callable[[bytes], Awaitable[object]], pcm: bytes, step: int, out: Timed,
                     realtime: float = 1.0) -> None:
    """`pcm` to `send` in `step`-byte pieces at `realtime` pace (tests.support.paced), each piece's send
    time in `out.sent` (audio ms sent so far, perf_counter)."""
    sent = 0
    async for piece in paced(pcm, step, realtime=realtime):
        await send(piece)
        sent += len(piece)
        out.sent.append((sent // 32, time.perf_counter()))


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    v = sorted(values)
    k = (len(v) - 1) * p / 100
    lo, hi = int(k), min(int(k) + 1, len(v) - 1)
    return v[lo] + (v[hi] - v[lo]) * (k - lo)


def p50_p95(values: list[float]) -> str:
    return f"{pct(values, 50):.0f} / {pct(values, 95):.0f}" if values else "n/a"


def machine() -> str:
    cpu = "?"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    nproc = subprocess.run(["nproc"], capture_output=True, text=True).stdout.strip()
    return f"{nproc} cores ({cpu}), Python {platform.python_version()}"


def mean(values: list[float]) -> float:
    return statistics.fmean(values) if values else float("nan")
