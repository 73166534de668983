"""livekit-agents' OpenAI STT pointed at the hub (docs/INTEGRATIONS.md).

    python examples/livekit_stt.py http://127.0.0.1:8000/v1 <api-key> speech.wav

`openai.STT(base_url=...)` sends whole utterances to POST /v1/audio/transcriptions (`recognize`) and, with
`use_realtime=True`, streams audio over the hub's Realtime socket (`stream`). Both are run here."""

from __future__ import annotations

import asyncio
import sys
import wave

from livekit import rtc
from livekit.agents import stt as agents_stt
from livekit.agents.utils import http_context
from livekit.plugins import openai as lk_openai


def read_frames(path: str, ms: int = 20) -> list[rtc.AudioFrame]:
    """A 16-bit PCM WAV file as LiveKit audio frames."""
    with wave.open(path, "rb") as w:
        rate, channels = w.getframerate(), w.getnchannels()
        data = w.readframes(w.getnframes())
    step = rate * ms // 1000
    size = step * channels * 2
    return [rtc.AudioFrame(data[i:i + size], rate, channels, len(data[i:i + size]) // (2 * channels))
            for i in range(0, len(data), size)]


async def recognize(base_url: str, api_key: str, path: str) -> str:
    """One utterance over REST (what livekit's non-streaming STT path does)."""
    stt = lk_openai.STT(base_url=base_url, api_key=api_key, model="whisper-1", language="en")
    event = await stt.recognize(read_frames(path))
    return event.alternatives[0].text


async def stream(base_url: str, api_key: str, path: str) -> list[str]:
    """Live audio over the hub's Realtime socket; returns the final transcripts."""
    stt = lk_openai.STT(base_url=base_url, api_key=api_key, model="gpt-4o-transcribe", language="en",
                        use_realtime=True)
    finals: list[str] = []
    speech = stt.stream()
    for frame in read_frames(path):
        speech.push_frame(frame)
    silence = rtc.AudioFrame(bytes(16000 * 2), 16000, 1, 16000)  # 1 s: the hub's VAD ends the utterance
    speech.push_frame(silence)
    async for ev in speech:
        if ev.type == agents_stt.SpeechEventType.FINAL_TRANSCRIPT:
            finals.append(ev.alternatives[0].text)
            break
    await speech.aclose()
    await stt.aclose()
    return finals


async def main(base_url: str, api_key: str, path: str) -> tuple[str, list[str]]:
    http_context._new_session_ctx()  # outside a LiveKit job: an aiohttp session for the websocket
    try:
        return await recognize(base_url, api_key, path), await stream(base_url, api_key, path)
    finally:
        await http_context._close_http_ctx()


if __name__ == "__main__":
    text, finals = asyncio.run(main(*sys.argv[1:4]))
    print("recognize:", text)
    print("stream:", " | ".join(finals))
