"""pipecat's OpenAI STT service pointed at the hub (docs/INTEGRATIONS.md).

    python examples/pipecat_stt.py http://127.0.0.1:8000/v1 <api-key> speech.wav

In a pipeline, `OpenAISTTService` (a segmented STT) collects each user turn and posts it to
POST /v1/audio/transcriptions. Here one turn is transcribed directly with `run_stt`, as the pipeline would,
with `include_prob_metrics=True` so the hub also returns token log-probabilities."""

from __future__ import annotations

import asyncio
import sys

from pipecat.frames.frames import TranscriptionFrame
from pipecat.services.openai.stt import OpenAISTTService
from pipecat.transcriptions.language import Language


async def transcribe(base_url: str, api_key: str, wav: bytes, model: str = "gpt-4o-transcribe") -> TranscriptionFrame:
    stt = OpenAISTTService(api_key=api_key, base_url=base_url, include_prob_metrics=True,
                           settings=OpenAISTTService.Settings(model=model, language=Language.EN))
    async for frame in stt.run_stt(wav):
        if isinstance(frame, TranscriptionFrame):
            return frame
    raise RuntimeError("no transcription frame")


if __name__ == "__main__":
    with open(sys.argv[3], "rb") as f:
        frame = asyncio.run(transcribe(sys.argv[1], sys.argv[2], f.read()))
    print(frame.text)
