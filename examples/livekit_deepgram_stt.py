"""livekit-agents' Deepgram STT pointed at the hub (docs/PROTOCOL.md §9).

    python examples/livekit_deepgram_stt.py http://127.0.0.1:8000 <api-key> speech.wav

`deepgram.STT(base_url=<hub>/v1/listen)` sends whole utterances to POST /v1/listen (`recognize`) and streams
audio over the hub's Deepgram socket, GET /v1/listen (`stream`). Both are run here."""

from __future__ import annotations

import asyncio
import sys
import wave

from livekit import rtc
from livekit.agents import stt as agents_stt
from livekit.agents.utils import http_context
from livekit.plugins import deepgram


def read_frames(path: str, ms: int = 20) -> list[rtc.AudioFrame]:
    """A 16-bit PCM WAV file as LiveKit audio frames."""
    with wave.open(path, "rb") as w:
        rate, channels = w.getframerate(), w.getnchannels()
        data = w.readframes(w.getnframes())
    step = rate * ms // 1000
    size = step * channels * 2
    return [rtc.AudioFrame(data[i:i + size], rate, channels, len(data[i:i + size]) // (2 * channels))
            for i in range(0, len(data), size)]


def make_stt(hub: str, api_key: str) -> deepgram.STT:
    return deepgram.STT(base_url=hub + "/v1/listen", api_key=api_key, model="nova-3", language="en",
                        interim_results=True, smart_format=True)


async def recognize(hub: str, api_key: str, path: str) -> str:
    stt = make_stt(hub, api_key)
    event = await stt.recognize(read_frames(path))
    return event.alternatives[0].text


async def stream(hub: str, api_key: str, path: str, pace: float = 4.0) -> tuple[list[str], int]:
    """Live audio over the hub's Deepgram socket, `pace` x real time as a microphone would give it; the final
    transcripts and how many interim ones came."""
    stt = make_stt(hub, api_key)
    finals: list[str] = []
    interims = 0
    speech = stt.stream()
    for frame in read_frames(path):
        speech.push_frame(frame)
        await asyncio.sleep(frame.duration / pace)
    speech.push_frame(rtc.AudioFrame(bytes(16000 * 2), 16000, 1, 16000))  # 1 s: the utterance ends
    speech.end_input()  # CloseStream: the remaining finals, then the stream ends
    async for ev in speech:
        if ev.type == agents_stt.SpeechEventType.INTERIM_TRANSCRIPT:
            interims += 1
        elif ev.type == agents_stt.SpeechEventType.FINAL_TRANSCRIPT:
            finals.append(ev.alternatives[0].text)
    await speech.aclose()
    await stt.aclose()
    return finals, interims


async def main(hub: str, api_key: str, path: str) -> tuple[str, list[str], int]:
    http_context._new_session_ctx()  # outside a LiveKit job: an aiohttp session for the websocket
    try:
        text = await recognize(hub, api_key, path)
        finals, interims = await stream(hub, api_key, path)
        return text, finals, interims
    finally:
        await http_context._close_http_ctx()


if __name__ == "__main__":
    text, finals, interims = asyncio.run(main(*sys.argv[1:4]))
    print("recognize:", text)
    print("stream:", " | ".join(finals), f"({interims} interim results)")
