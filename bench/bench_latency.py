"""Spine latency and accuracy: English manifest files streamed over WebSocket (asrhub.client) at real-time pace,
one session at a time.

    .venv/bin/python -m bench.bench_latency [--silence-ms 350] [--runs 1]

(a) final latency after the last voiced audio with VAD endpointing (includes silence_ms),
(b) final latency after `stop` (VAD hangover disabled so the final can only come from stop),
(c) first partial after speech start, and streaming WER next to offline whole-file WER.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
from pathlib import Path

from bench.common import SPEECH_ROOT, machine, p50_p95, stream_timed
from tests.support import HubProcess, base_config, english, load_pcm16, wer


async def offline_wer() -> float:
    from asrhub.core.config import load_config
    from asrhub.engine.transcribe import transcribe_files

    clips = english(SPEECH_ROOT)
    res = await transcribe_files(load_config(None), [c.path for c in clips], None, "en", progress=False)
    return wer([c.transcript for c in clips], [r.text for _, r in res])


async def run(silence_ms: int, runs: int) -> None:
    tmp = Path(tempfile.mkdtemp())
    hub = HubProcess(base_config(), tmp).start()
    vad_lat: list[float] = []
    stop_lat: list[float] = []
    first_partial: list[float] = []
    server_lat: list[float] = []
    refs: list[str] = []
    hyps: list[str] = []
    try:
        for _ in range(runs):
            for c in english(SPEECH_ROOT):
                pcm = load_pcm16(c.path).tobytes()
                t = await stream_timed(hub.ws, pcm, start={"vad": {"silence_ms": silence_ms}}, trailing_silence_ms=800)
                refs.append(c.transcript)
                hyps.append(" ".join(e["text"] for e in t.events if e["type"] == "transcript.final"))
                for e, rt in zip(t.events, t.recv, strict=True):
                    if e["type"] == "transcript.final" and rt < t.stop_at:
                        vad_lat.append((rt - t.sent_time(e["end_ms"])) * 1000)
                        server_lat.append(e["latency_ms"])
                starts = [e for e in t.events if e["type"] == "speech.started"]
                for s in starts:
                    utt_partials = [(e, rt) for e, rt in zip(t.events, t.recv, strict=True)
                                    if e["type"] == "transcript.partial" and e["start_ms"] <= s["offset_ms"] + 400
                                    and e["end_ms"] > s["offset_ms"]]
                    if utt_partials:
                        first_partial.append((utt_partials[0][1] - t.sent_time(s["offset_ms"])) * 1000)
                # (b): no VAD endpoint possible (silence_ms 10 s): the final comes from stop
                t2 = await stream_timed(hub.ws, pcm, start={"vad": {"silence_ms": 10000}, "interim_results": False})
                fin = [rt for e, rt in zip(t2.events, t2.recv, strict=True) if e["type"] == "transcript.final"]
                if fin:
                    stop_lat.append((fin[-1] - t2.stop_at) * 1000)
    finally:
        hub.stop()
    off = await offline_wer()
    print(f"machine: {machine()}")
    print(f"files: {len(english(SPEECH_ROOT))} English manifest files x {runs} run(s), 20 ms chunks, real-time pace")
    print("| figure | p50 / p95 (ms) | n |\n|---|---|---|")
    print(f"| final after last voiced audio, VAD endpoint (silence_ms={silence_ms}) | {p50_p95(vad_lat)} | {len(vad_lat)} |")
    print(f"| same, as reported by the hub (`latency_ms`) | {p50_p95(server_lat)} | {len(server_lat)} |")
    print(f"| final after `stop` | {p50_p95(stop_lat)} | {len(stop_lat)} |")
    print(f"| first partial after speech start | {p50_p95(first_partial)} | {len(first_partial)} |")
    print(f"\nstreaming WER {wer(refs, hyps):.4f} vs offline whole-file WER {off:.4f}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--silence-ms", type=int, default=450)
    ap.add_argument("--runs", type=int, default=1)
    a = ap.parse_args()
    asyncio.run(run(a.silence_ms, a.runs))


if __name__ == "__main__":
    main()
