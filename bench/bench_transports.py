"""Transport bench: what each wire adds on top of the hub.

Per transport (WebSocket, HTTP+SSE, Socket.IO, gRPC), real speech is streamed at real-time pace in 40 ms
chunks, one session at a time, transports interleaved per file so that they share the machine's load:

- overhead: client arrival time - the event's own `ts` (set by the hub when the event enters the
  session's channel), over every event; the same clock on loopback. This is the transport's cost:
  serialisation, the socket, the client library.
- open-stream overhead: the same over the events that entered the channel while the client's event
  stream was open. The others are replayed on connect: over SSE that is session.started, issued by
  `POST /v1/sessions` before the client can `GET` its events, so its overhead holds that round trip.
- final latency: the `latency_ms` the hub reports on each final (end of the utterance's audio -> final).

    .venv/bin/python -m bench.bench_transports [--clips a,b] [--rounds N] [--out docs/bench_transports_draft.md]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import SPEECH_ROOT, machine, pct
from tests.contract.clients import CLIENTS, PCM16
from tests.support import HubProcess, base_config, clip, load_pcm16

DEFAULT_CLIPS = "en_libri_1221,en_libri_1089-134691,en_jfk"


async def one_session(hub: HubProcess, transport: str, pcm: bytes, realtime: float) -> dict[str, Any]:
    c = CLIENTS[transport](hub)
    await c.connect()
    try:
        assert await c.start({"audio": PCM16})
        await c.stream(pcm, chunk_bytes=1280, realtime=realtime)
        await c.stop()
        await c.wait_ended(300)
    finally:
        await c.close()
    overhead = [(t - e["ts"]) * 1000.0 for e, t in zip(c.events, c.arrivals, strict=True) if e.get("ts")]
    live = [(t - e["ts"]) * 1000.0 for e, t in zip(c.events, c.arrivals, strict=True)
            if e.get("ts") and e["ts"] >= c.stream_opened]
    finals = [e for e in c.events if e["type"] == "transcript.final"]
    return {"overhead": overhead, "live_overhead": live, "latency": [float(f["latency_ms"]) for f in finals],
            "finals_overhead": [(t - e["ts"]) * 1000.0 for e, t in zip(c.events, c.arrivals, strict=True)
                                if e["type"] == "transcript.final"],
            "events": len(c.events)}


async def bench(hub: HubProcess, clips: list[str], rounds: int, realtime: float) -> dict[str, dict[str, list[float]]]:
    out: dict[str, dict[str, list[float]]] = {t: {"overhead": [], "live_overhead": [], "latency": [],
                                                   "finals_overhead": [], "events": []} for t in CLIENTS}
    pcms = {name: load_pcm16(clip(name, SPEECH_ROOT).path).tobytes() for name in clips}
    order = list(CLIENTS)
    for r in range(rounds):
        for name in clips:
            for transport in order[r % len(order):] + order[:r % len(order)]:
                res = await one_session(hub, transport, pcms[name], realtime)
                for k in ("overhead", "live_overhead", "latency", "finals_overhead"):
                    out[transport][k] += res[k]
                out[transport]["events"].append(res["events"])
                print(f"  round {r + 1} {name:<24} {transport:<10} events={res['events']:<4} "
                      f"overhead p50={pct(res['overhead'], 50):.1f} ms  finals latency={res['latency']}",
                      file=sys.stderr)
    return out


def table(results: dict[str, dict[str, list[float]]]) -> str:
    rows = ["| transport | events | overhead p50 / p95 / max (ms) | open-stream overhead p50 / p95 / max (ms) "
            "| finals: overhead p50 / p95 (ms) | final latency p50 / p95 (ms) | finals |",
            "|---|---|---|---|---|---|---|"]
    for t, r in results.items():
        o, lo, fo, lat = r["overhead"], r["live_overhead"], r["finals_overhead"], r["latency"]
        rows.append(f"| {t} | {int(sum(r['events']))} | {pct(o, 50):.1f} / {pct(o, 95):.1f} / {max(o):.1f} "
                    f"| {pct(lo, 50):.1f} / {pct(lo, 95):.1f} / {max(lo):.1f} ({len(lo)}) "
                    f"| {pct(fo, 50):.1f} / {pct(fo, 95):.1f} | {pct(lat, 50):.0f} / {pct(lat, 95):.0f} | {len(lat)} |")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--clips", default=DEFAULT_CLIPS, help="manifest file prefixes, comma-separated")
    p.add_argument("--rounds", type=int, default=1)
    p.add_argument("--realtime", type=float, default=1.0, help="pace: 1.0 = real time")
    p.add_argument("--out", help="write the markdown report here")
    args = p.parse_args(argv)
    clips = [c.strip() for c in args.clips.split(",") if c.strip()]
    with tempfile.TemporaryDirectory() as tmp:
        hub = HubProcess(base_config(), Path(tmp)).start()
        try:
            t0 = time.monotonic()
            results = asyncio.run(bench(hub, clips, args.rounds, args.realtime))
            took = time.monotonic() - t0
        finally:
            hub.stop()
    command = ".venv/bin/python -m bench.bench_transports " + " ".join(argv if argv is not None else sys.argv[1:])
    audio_s = sum(clip(c, SPEECH_ROOT).seconds for c in clips) * args.rounds
    report = "\n".join([
        "## Transports: hub overhead and final latency", "",
        f"`{command.strip()}`", "",
        f"Machine: {machine()}. {audio_s:.0f} s of speech per transport ({', '.join(clips)}; {args.rounds} "
        f"round(s)), streamed at {args.realtime:g}x real time in 40 ms chunks, one session at a time, transports "
        f"interleaved; default config (faster-whisper tiny.en int8, WebRTC VAD); {took:.0f} s wall.", "",
        table(results), "",
        "*overhead* = arrival at the client - the event's `ts` (stamped when the event enters the session's "
        "channel), over every event of the session (partials included); same clock, loopback. "
        "*open-stream overhead* = the same over the events issued while the client's event stream was open "
        "(their count in brackets): over SSE, session.started is issued by `POST /v1/sessions` before the "
        "client can `GET` the stream, so its overhead is that round trip, not the cost of delivering an event. "
        "*final latency* = the hub's `latency_ms` (end of the utterance's audio -> the final), which the "
        "transport does not change: its spread between rows is machine load.", ""])
    print(report)
    if args.out:
        Path(args.out).write_text(report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
