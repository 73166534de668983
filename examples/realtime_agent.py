"""A Realtime-API voice agent's ear, transcribing through the hub (docs/INTEGRATIONS.md).

    python examples/realtime_agent.py http://127.0.0.1:8000/v1 <api-key> speech.wav

The official `openai` client connects to the hub's /v1/realtime?intent=transcription exactly as it would to
OpenAI, configures a transcription session (24 kHz PCM, server VAD), streams the file at real-time pace as a
microphone would, and acts on each user turn when its transcript completes. Prints one line per turn."""

from __future__ import annotations

import asyncio
import base64
import sys
import time
from collections.abc import Callable
from typing import Any

import av
from openai import AsyncOpenAI

RATE = 24000


def read_pcm24k(path: str) -> bytes:
    """Any audio file -> 16-bit mono PCM at 24 kHz (what the Realtime API takes as audio/pcm)."""
    out = []
    with av.open(path) as f:
        resampler = av.AudioResampler(format="s16", layout="mono", rate=RATE)
        for frame in f.decode(audio=0):
            out.extend(r.to_ndarray().tobytes() for r in resampler.resample(frame))
        out.extend(r.to_ndarray().tobytes() for r in resampler.resample(None))
    return b"".join(out)


async def microphone(conn: object, pcm: bytes, speed: float) -> None:
    chunk = RATE * 2 // 10  # 100 ms
    t0 = time.monotonic()
    for n, i in enumerate(range(0, len(pcm), chunk)):
        await conn.input_audio_buffer.append(audio=base64.b64encode(pcm[i:i + chunk]).decode())  # type: ignore
        await asyncio.sleep(max(0.0, t0 + (n + 1) * 0.1 / speed - time.monotonic()))
    silence = base64.b64encode(bytes(RATE * 2)).decode()  # 1 s of silence ends the last turn
    await conn.input_audio_buffer.append(audio=silence)  # type: ignore


def show(event: Any, turns: list[str]) -> None:
    """What this agent does with the socket's events: print each user turn (the agent answers here) and errors."""
    if event.type == "conversation.item.input_audio_transcription.completed":
        print(f"user turn {len(turns)}: {event.transcript}", flush=True)
    elif event.type == "error":
        print(f"error: {event.error.message}", file=sys.stderr, flush=True)


async def run(base_url: str, api_key: str, path: str, speed: float = 1.0,
              on_event: Callable[[Any, list[str]], None] = show) -> list[str]:
    """Transcribe the file as a live microphone; `on_event(event, turns so far)` sees every server event.
    Returns the user turns' transcripts."""
    client = AsyncOpenAI(base_url=base_url, api_key=api_key)
    turns: list[str] = []
    async with client.realtime.connect(model="gpt-4o-transcribe", extra_query={"intent": "transcription"}) as conn:
        await conn.session.update(session={  # type: ignore[arg-type]
            "type": "transcription",
            "audio": {"input": {"format": {"type": "audio/pcm", "rate": RATE},
                                "transcription": {"model": "gpt-4o-transcribe", "language": "en"},
                                "turn_detection": {"type": "server_vad", "silence_duration_ms": 500}}}})
        open_turns = 0
        changed = asyncio.Event()

        async def listen() -> None:
            nonlocal open_turns
            async for event in conn:
                if event.type == "input_audio_buffer.speech_started":
                    open_turns += 1
                elif event.type == "conversation.item.input_audio_transcription.completed":
                    turns.append(event.transcript)
                    open_turns -= 1
                    changed.set()
                on_event(event, turns)

        listener = asyncio.create_task(listen())
        await microphone(conn, read_pcm24k(path), speed)
        while open_turns > 0:  # the end of the recording: wait for the turns still being transcribed
            changed.clear()
            await changed.wait()
        listener.cancel()
    return turns


if __name__ == "__main__":
    asyncio.run(run(sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4]) if len(sys.argv) > 4 else 1.0))
