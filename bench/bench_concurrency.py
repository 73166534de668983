"""Concurrent real-time streams with faster-whisper tiny.en (issue 7).

    .venv/bin/python -m bench.bench_concurrency --streams 4 8 12 16 --seconds 60

Each stream talks 50% of the time: English manifest clips, each followed by as much silence, sent in
40 ms chunks at real-time pace, whole clips up to `--seconds` (so streams end at different times, each
on silence). For each N: final latency after the last voiced audio (client side,
p50/p95), the hub's lag at finals, partials per final, refused sessions. The largest N whose final
latency p95 stays <= 1.0 s is the figure. Overload: `--streams 48 --max-sessions 24` (2x the figure with
the hub capped at it): the admitted streams' latency and lag, and how many were refused.
`--gap-s 1` makes continuous talkers instead (clips back to back, 1 s of silence after each, issue 11).
First partial: per utterance longer than 1.5 s, from the sending of its speech onset to its first partial.
`--language zh` streams the Mandarin manifest clips with `language: zh` (the default config routes them to
bundled:base).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import websockets

from bench.common import SPEECH_ROOT, machine, p50_p95, pct
from tests.support import HubProcess, base_config, english, load_pcm16, manifest

CHUNK_MS = 40


async def one_stream(url: str, clips: list[bytes], seconds: float, index: int, out: dict[str, Any],
                     gap_s: float | None = None, start: dict[str, Any] | None = None) -> None:
    step = 32 * CHUNK_MS
    order = clips[index % len(clips):] + clips[: index % len(clips)]
    # whole clips, each followed by as much silence, up to `seconds`: every utterance ends in silence, so
    # every final is endpointed by the VAD while the others talk; a stream cut mid-clip would have its
    # final forced by `stop`, and all streams stopping together would measure a burst no deployment sees
    audio = b""
    for c in order:
        silence = b"\x00" * (len(c) if gap_s is None else int(gap_s * 32000))
        if audio and len(audio) + len(c) + len(silence) > seconds * 32000:
            break
        audio += c + silence
    sent: list[tuple[float, float]] = []
    onsets: dict[str, float] = {}  # utterance id -> speech onset (ms) until its first partial
    started: list[float] = []
    try:
        async with websockets.connect(url, max_size=None) as ws:
            await ws.send(json.dumps({"type": "start", **(start or {})}))
            first = json.loads(await ws.recv())
            if first["type"] == "error":
                out["refused"] += 1
                return

            async def reader() -> None:
                async for msg in ws:
                    ev = json.loads(msg)
                    now = time.perf_counter()
                    if ev["type"] == "transcript.final":
                        t_end = next((t for ms, t in sent if ms >= ev["end_ms"]), None)
                        if t_end is not None and not out.get("stopping"):
                            out["latency"].append((now - t_end) * 1000)
                        out["lag"].append(ev.get("lag_ms", 0))
                        out["finals"] += 1
                    elif ev["type"] == "transcript.partial":
                        out["partials"] += 1
                        onset = onsets.pop(ev["utterance_id"], None)
                        if onset is not None:
                            t_on = next((t for ms, t in sent if ms >= onset), None)
                            if t_on is not None:
                                out["first_partial"].append((now - t_on) * 1000)
                    elif ev["type"] == "speech.started":  # the n-th opens utterance "u<n>"
                        started.append(ev["offset_ms"])
                        onsets[f"u{len(started)}"] = ev["offset_ms"]
                    elif ev["type"] == "speech.ended":
                        # utterances up to 1.5 s long are not counted (their first partial may be the final)
                        u = f"u{len(started)}"
                        if u in onsets and ev["offset_ms"] - onsets[u] <= 1500:
                            del onsets[u]
                        elif u in onsets:
                            out["no_partial"] += 1  # longer than 1.5 s and ended without any partial
                            del onsets[u]
                    elif ev["type"] == "error":
                        out["errors"].append(ev["code"])

            task = asyncio.create_task(reader())
            await asyncio.sleep(index * 0.05)  # stagger starts
            t0 = time.perf_counter()
            for i in range(0, len(audio), step):
                await ws.send(audio[i:i + step])
                ms = (i + step) / 32
                sent.append((ms, time.perf_counter()))
                delay = t0 + ms / 1000 - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
            await ws.send(json.dumps({"type": "stop"}))
            await asyncio.wait_for(task, 120)
    except (OSError, websockets.WebSocketException) as e:
        out["errors"].append(type(e).__name__)


async def run_n(url: str | list[str], clips: list[bytes], n: int, seconds: float,
                gap_s: float | None = None, start: dict[str, Any] | None = None) -> dict[str, Any]:
    """`n` streams at once; with several URLs (hubs), stream i goes to hub i mod len(urls)."""
    urls = [url] if isinstance(url, str) else url
    out: dict[str, Any] = {"latency": [], "lag": [], "finals": 0, "partials": 0, "refused": 0, "errors": [],
                           "first_partial": [], "no_partial": 0}
    await asyncio.gather(*(one_stream(urls[i % len(urls)], clips, seconds, i, out, gap_s, start) for i in range(n)))
    return out


async def main_async(streams: list[int], seconds: float, extra: str, max_sessions: int,
                     gap_s: float | None = None, language: str = "en") -> None:
    pool = english(SPEECH_ROOT) if language == "en" else [c for c in manifest(SPEECH_ROOT) if c.language == language]
    clips = [load_pcm16(c.path).tobytes() for c in pool if c.seconds < 15]
    start = None if language == "en" else {"language": language}  # routed by the default config (DESIGN §5)
    limits = f"\nlimits:\n  max_sessions: {max_sessions}\n"
    hub = HubProcess(base_config() + extra + limits, Path(tempfile.mkdtemp())).start()
    talk = "50% talk" if gap_s is None else f"continuous talk ({gap_s:g} s after each clip)"
    print(f"machine: {machine()}; {seconds:.0f} s per stream, {talk}, {CHUNK_MS} ms chunks, "
          f"language {language} ({len(clips)} clips)")
    print("| streams | final latency p50 / p95 (ms) | first partial p50 / p95 (ms), utterances > 1.5 s "
          "| without partial | lag at finals p95 (ms) | finals | partials | refused | errors |")
    print("|---|---|---|---|---|---|---|---|---|")
    try:
        for n in streams:
            r = await run_n(hub.ws, clips, n, seconds, gap_s, start)
            print(f"| {n} | {p50_p95(r['latency'])} | {p50_p95(r['first_partial'])} | {r['no_partial']} | "
                  f"{pct(r['lag'], 95):.0f} | {r['finals']} | {r['partials']} | "
                  f"{r['refused']} | {len(r['errors'])} |", flush=True)
    finally:
        hub.stop()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--streams", type=int, nargs="+", default=[1, 4, 8, 12, 16])
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--config-extra", default="", help="YAML appended to the hub config")
    ap.add_argument("--max-sessions", type=int, default=400, help="limits.max_sessions (overload: the capacity)")
    ap.add_argument("--gap-s", type=float, default=None, help="continuous talkers: this much silence after each clip")
    ap.add_argument("--language", default="en", help="clips of this manifest language, sent as the session's "
                    "`language` (zh: Mandarin, routed to bundled:base)")
    a = ap.parse_args()
    asyncio.run(main_async(a.streams, a.seconds, a.config_extra, a.max_sessions, a.gap_s, a.language))


if __name__ == "__main__":
    main()
