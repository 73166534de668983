"""Providers that run on this machine (faster_whisper, openai_whisper with the converted real tiny.en,
vosk with the bundled Korean model), and failover.

    .venv/bin/python -m bench.bench_providers [--clips 3] [--skip-stream] [--skip-failover]

(1) per provider, each in a fresh process: load time (library import + model load; openai_whisper's
    one-time CT2 -> .pt conversion is timed apart), resident memory after load, and real-time factor of
    whole-utterance decodes (`transcribe()`, one at a time) on English manifest speech (Vosk's model is
    Korean: its text is meaningless there, its compute is what is measured);
(2) per provider, the manifest clips streamed at real-time pace through a real hub: final latency after
    the end of the utterance's voiced audio (client clock) and the hub's own latency_ms;
(3) failover (tests/fixtures/failing.py behind faster_whisper): hub clock times from the failure to
    `provider.switched` and to the replayed final, for an exception in the final decode, a provider
    turning unhealthy mid-utterance, and a final that never comes (providers.timeout_s).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import SPEECH_ROOT, machine, mean, p50_p95, stream_timed
from tests.support import HubProcess, base_config, english, load_pcm16, wer

CACHE = Path(tempfile.gettempdir()) / "asrhub-bench-cache"
BLOCKS: dict[str, str] = {
    "faster_whisper": "faster_whisper:\n      model: bundled:tiny.en\n      language: en",
    "openai_whisper": f"openai_whisper:\n      model: bundled:tiny.en\n      cache_dir: {CACHE}",
    "vosk": "vosk:\n      language: ko",
}
OPTIONS: dict[str, dict[str, Any]] = {
    "faster_whisper": {"model": "bundled:tiny.en"},
    "openai_whisper": {"model": "bundled:tiny.en", "cache_dir": str(CACHE)},
    "vosk": {},
}


def rss_mb() -> float:
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def _one(kind: str, n_clips: int) -> dict[str, Any]:
    """Runs in a fresh process: load, memory, RTF."""
    import numpy as np

    from asrhub.engine.scheduler import Scheduler
    from asrhub.providers.base import TranscribeOptions
    from asrhub.providers.registry import provider_class

    out: dict[str, Any] = {"provider": kind, "rss_before_mb": rss_mb()}
    sched = Scheduler(1)
    await sched.start()
    if kind == "openai_whisper":
        from asrhub.providers.openai_whisper import resolve_checkpoint
        pt = CACHE / "openai-whisper" / "tiny.en.pt"
        pt.unlink(missing_ok=True)
        t = time.perf_counter()
        await asyncio.to_thread(resolve_checkpoint, "bundled:tiny.en", OPTIONS[kind])
        out["convert_s"] = time.perf_counter() - t
    p = provider_class(kind)(kind, OPTIONS[kind], sched, language="ko" if kind == "vosk" else "en")
    t = time.perf_counter()
    await p.load()
    out["load_s"] = time.perf_counter() - t
    assert p.health().status == "available", p.health()
    out["rss_after_load_mb"] = rss_mb()
    clips = english(SPEECH_ROOT)[:n_clips]
    audio_s = busy = 0.0
    refs, hyps = [], []
    for c in clips:
        pcm = load_pcm16(c.path)
        t = time.perf_counter()
        res = await p.transcribe(pcm, TranscribeOptions(language=None if kind == "vosk" else "en"))
        busy += time.perf_counter() - t
        audio_s += len(pcm) / 16000
        refs.append(c.transcript)
        hyps.append(res.text)
    out.update(audio_s=audio_s, rtf=busy / audio_s, rss_peak_mb=rss_mb(),
               wer=None if kind == "vosk" else wer(refs, hyps))
    await p.close()
    await sched.stop()
    del np
    return out


def per_provider(n_clips: int) -> list[dict[str, Any]]:
    rows = []
    for kind in BLOCKS:
        r = subprocess.run([sys.executable, "-m", "bench.bench_providers", "--one", kind, "--clips", str(n_clips)],
                           capture_output=True, text=True, check=True)
        rows.append(json.loads(r.stdout.strip().splitlines()[-1]))
    return rows


async def streamed(n_clips: int) -> dict[str, dict[str, Any]]:
    providers = "providers:\n  default: faster_whisper\n  timeout_s: 60\n  instances:\n" + "".join(
        f"    {b}\n" for b in BLOCKS.values())
    hub = HubProcess(base_config(providers=providers), Path(tempfile.mkdtemp())).start(timeout=300)
    out: dict[str, dict[str, Any]] = {}
    try:
        for kind in BLOCKS:
            client: list[float] = []
            server: list[float] = []
            refs, hyps = [], []
            for c in english(SPEECH_ROOT)[:n_clips]:
                start = {"provider": kind} | ({} if kind == "vosk" else {"language": "en"})
                t = await stream_timed(hub.ws, load_pcm16(c.path).tobytes(), start=start, trailing_silence_ms=6000)
                for e, rt in zip(t.events, t.recv, strict=True):
                    if e["type"] == "transcript.final":
                        client.append((rt - t.sent_time(e["end_ms"])) * 1000)
                        server.append(e["latency_ms"])
                refs.append(c.transcript)
                hyps.append(" ".join(e["text"] for e in t.events if e["type"] == "transcript.final"))
            out[kind] = {"client_ms": p50_p95(client), "server_ms": p50_p95(server), "finals": len(client),
                         "wer": None if kind == "vosk" else wer(refs, hyps)}
    finally:
        hub.stop()
    return out


FAILOVER = """
providers:
  default: faster_whisper
  fallback: [faster_whisper]
  timeout_s: {timeout}
  probe_interval_s: 1
  instances:
    faster_whisper:
      model: bundled:tiny.en
      language: en
"""
FAULTS = {"flaky": "fail: final\n      fail_for_s: 1000", "sick": "fail: unhealthy\n      after_partials: 2",
          "slow": "fail: hang\n      fail_for_s: 1000"}


def failover_config(runs: int, timeout_s: float) -> str:
    """One faulty instance per run (a failed provider stays unhealthy: it never recovers here)."""
    text = FAILOVER.format(timeout=timeout_s)
    for kind, fault in FAULTS.items():
        for i in range(runs):
            text += (f"    {kind}_{i}:\n      type: \"tests.fixtures.failing:FailingProvider\"\n"
                     f"      model: bundled:tiny.en\n      language: en\n      {fault}\n")
    return text


_AT = re.compile(r" at (\d+\.\d+)")


async def failover(runs: int, timeout_s: float) -> dict[str, dict[str, Any]]:
    from tests.support import clip
    hub = HubProcess(base_config(providers=failover_config(runs, timeout_s)), Path(tempfile.mkdtemp())).start()
    pcm = load_pcm16(clip("en_libri_1221", SPEECH_ROOT).path).tobytes()
    out: dict[str, dict[str, Any]] = {}
    try:
        for kind in ("faster_whisper", "flaky", "sick", "slow"):
            to_switch: list[float] = []
            to_final: list[float] = []
            ended_to_final: list[float] = []
            for i in range(runs):
                name = kind if kind == "faster_whisper" else f"{kind}_{i}"
                t = await stream_timed(hub.ws, pcm, start={"provider": name}, trailing_silence_ms=800)
                ev = {e["type"]: e for e in t.events}
                fin = ev.get("transcript.final")
                sw = ev.get("provider.switched")
                ended = ev.get("speech.ended")
                if fin is None or ended is None:
                    continue
                ended_to_final.append((fin["ts"] - ended["ts"]) * 1000)
                if sw is None:
                    continue
                m = _AT.search(sw["reason"])
                failed_at = float(m.group(1)) if m else ended["ts"]   # timeout: the final was due at speech.ended
                to_switch.append((sw["ts"] - failed_at) * 1000)
                to_final.append((fin["ts"] - failed_at) * 1000)
            out[kind] = {"runs": runs, "switched": len(to_switch), "failure_to_switched_ms": mean(to_switch),
                         "failure_to_final_ms": mean(to_final), "speech_ended_to_final_ms": mean(ended_to_final)}
    finally:
        hub.stop()
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--one", help=argparse.SUPPRESS)
    ap.add_argument("--clips", type=int, default=3)
    ap.add_argument("--failover-runs", type=int, default=3)
    ap.add_argument("--timeout-s", type=float, default=3.0)
    ap.add_argument("--skip-stream", action="store_true")
    ap.add_argument("--skip-failover", action="store_true")
    a = ap.parse_args()
    if a.one:
        print(json.dumps(asyncio.run(_one(a.one, a.clips))))
        return
    print(f"# providers bench — {machine()}\n")
    print("## load, memory, whole-utterance real-time factor (fresh process per provider)\n")
    print("| provider | load s | CT2->.pt convert s | RSS after load MB | RSS after decodes MB | audio s | RTF | WER |")
    print("|---|---|---|---|---|---|---|---|")
    for r in per_provider(a.clips):
        print(f"| {r['provider']} | {r['load_s']:.2f} | {r.get('convert_s', float('nan')):.2f} | "
              f"{r['rss_after_load_mb']:.0f} | {r['rss_peak_mb']:.0f} | {r['audio_s']:.1f} | {r['rtf']:.3f} | "
              f"{'-' if r['wer'] is None else format(r['wer'], '.3f')} |")
    if not a.skip_stream:
        print("\n## streamed at real-time pace through one hub (final latency after the end of voiced audio)\n")
        print("| provider | finals | client p50 / p95 ms | hub latency_ms p50 / p95 | WER |")
        print("|---|---|---|---|---|")
        for kind, r in asyncio.run(streamed(a.clips)).items():
            print(f"| {kind} | {r['finals']} | {r['client_ms']} | {r['server_ms']} | "
                  f"{'-' if r['wer'] is None else format(r['wer'], '.3f')} |")
    if not a.skip_failover:
        print(f"\n## failover to faster_whisper (hub clock; providers.timeout_s = {a.timeout_s})\n")
        print("| fault | runs | switched | failure -> provider.switched ms | failure -> replayed final ms | "
              "speech.ended -> final ms |")
        print("|---|---|---|---|---|---|")
        names = {"faster_whisper": "none (baseline)", "flaky": "exception in final decode",
                 "sick": "unhealthy mid-utterance", "slow": "final never comes (timeout)"}
        for kind, r in asyncio.run(failover(a.failover_runs, a.timeout_s)).items():
            print(f"| {names[kind]} | {r['runs']} | {r['switched']} | {r['failure_to_switched_ms']:.0f} | "
                  f"{r['failure_to_final_ms']:.0f} | {r['speech_ended_to_final_ms']:.0f} |")


if __name__ == "__main__":
    main()
