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

Cost: `cpu/audio-s` is the hub process's CPU time (user + system, all threads, from /proc) over the run
divided by the audio seconds the streams sent (talk and silence). Paired A/B runs on a shared machine:
`--ab REV...` also starts a hub from each git revision's `src/` (exported with `git archive`, so the
working tree is untouched) and `--variant NAME=YAML...` one from this tree with YAML appended to its
config; for each N the variants run one after another (`--repeat` rounds, the order alternating each
round), so they see the same machine load. The load average is printed with every row.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import subprocess
import tarfile
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import websockets

from bench.common import SPEECH_ROOT, machine, p50_p95, pct
from tests.support import REPO, HubProcess, base_config, english, load_pcm16, manifest

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
    out["audio_s"] = out.get("audio_s", 0.0) + len(audio) / 32000
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
                           "first_partial": [], "no_partial": 0, "audio_s": 0.0}
    await asyncio.gather(*(one_stream(urls[i % len(urls)], clips, seconds, i, out, gap_s, start) for i in range(n)))
    return out


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, all its threads, so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def revision_src(rev: str) -> dict[str, str]:
    """The environment that makes `asrhub` import from git revision `rev`'s src/ (ahead of the editable
    install of this tree): exported once into a temporary directory."""
    sha = subprocess.run(["git", "rev-parse", "--short", rev], cwd=REPO, capture_output=True, text=True,
                         check=True).stdout.strip()
    root = Path(tempfile.gettempdir()) / f"asrhub-rev-{sha}"
    if not (root / "asrhub").exists():
        root.mkdir(parents=True, exist_ok=True)
        tree = root / "tree"
        tree.mkdir(exist_ok=True)
        archive = subprocess.run(["git", "archive", sha, "src", "config", "protos", "frontend"], cwd=REPO,
                                 capture_output=True, check=True).stdout
        with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
            tar.extractall(tree, filter="data")
        (root / "asrhub").symlink_to(tree / "src")  # (resources: config/, protos/ beside it, as in a checkout)
    return {"PYTHONPATH": str(root)}


@dataclass
class Variant:
    name: str
    hub: HubProcess


def row(name: str, n: int, r: dict[str, Any], cpu_s: float, load: tuple[float, float]) -> str:
    per = cpu_s / r["audio_s"] if r["audio_s"] else float("nan")
    return (f"| {name} | {n} | {p50_p95(r['latency'])} | {p50_p95(r['first_partial'])} | {r['no_partial']} | "
            f"{pct(r['lag'], 95):.0f} | {r['finals']} | {r['partials']} | {r['refused']} | {len(r['errors'])} | "
            f"{per:.3f} | {load[0]:.1f} → {load[1]:.1f} |")


async def main_async(streams: list[int], seconds: float, extra: str, max_sessions: int,
                     gap_s: float | None = None, language: str = "en", revs: list[str] | None = None,
                     variants: list[str] | None = None, repeat: int = 1) -> None:
    pool = english(SPEECH_ROOT) if language == "en" else [c for c in manifest(SPEECH_ROOT) if c.language == language]
    clips = [load_pcm16(c.path).tobytes() for c in pool if c.seconds < 15]
    start = None if language == "en" else {"language": language}  # routed by the default config (DESIGN §5)
    limits = f"\nlimits:\n  max_sessions: {max_sessions}\n"
    config = base_config() + extra + limits
    hubs: list[Variant] = [Variant("tree", HubProcess(config, Path(tempfile.mkdtemp())))]
    for rev in revs or []:
        hubs.append(Variant(rev, HubProcess(config, Path(tempfile.mkdtemp()), env=revision_src(rev))))
    for v in variants or []:
        name, _, yaml = v.partition("=")
        hubs.append(Variant(name, HubProcess(config + "\n" + yaml + "\n", Path(tempfile.mkdtemp()))))
    talk = "50% talk" if gap_s is None else f"continuous talk ({gap_s:g} s after each clip)"
    try:
        for v in hubs:
            v.hub.start()
        print(f"machine: {machine()}; {seconds:.0f} s per stream, {talk}, {CHUNK_MS} ms chunks, "
              f"language {language} ({len(clips)} clips)")
        print("| hub | streams | final latency p50 / p95 (ms) | first partial p50 / p95 (ms), utterances > 1.5 s "
              "| without partial | lag at finals p95 (ms) | finals | partials | refused | errors "
              "| CPU-s per audio-s | load average |")
        print("|---|---|---|---|---|---|---|---|---|---|---|---|")
        for n in streams:
            for k in range(repeat):
                for v in hubs if k % 2 == 0 else hubs[::-1]:
                    assert v.hub.proc is not None
                    load0, cpu0 = os.getloadavg()[0], cpu_seconds(v.hub.proc.pid)
                    r = await run_n(v.hub.ws, clips, n, seconds, gap_s, start)
                    cpu = cpu_seconds(v.hub.proc.pid) - cpu0
                    print(row(v.name, n, r, cpu, (load0, os.getloadavg()[0])), flush=True)
    finally:
        for v in hubs:
            v.hub.stop()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--streams", type=int, nargs="+", default=[1, 4, 8, 12, 16])
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--config-extra", default="", help="YAML appended to the hub config")
    ap.add_argument("--max-sessions", type=int, default=400, help="limits.max_sessions (overload: the capacity)")
    ap.add_argument("--gap-s", type=float, default=None, help="continuous talkers: this much silence after each clip")
    ap.add_argument("--language", default="en", help="clips of this manifest language, sent as the session's "
                    "`language` (zh: Mandarin, routed to bundled:base)")
    ap.add_argument("--ab", nargs="*", default=[], metavar="REV",
                    help="also a hub from each git revision's src/ (paired runs against this tree)")
    ap.add_argument("--variant", nargs="*", default=[], metavar="NAME=YAML",
                    help="also a hub from this tree with YAML appended to its config")
    ap.add_argument("--repeat", type=int, default=1, help="rounds per N (variants alternate their order)")
    a = ap.parse_args()
    asyncio.run(main_async(a.streams, a.seconds, a.config_extra, a.max_sessions, a.gap_s, a.language,
                           a.ab, a.variant, a.repeat))


if __name__ == "__main__":
    main()
