"""OpenAI's answer shapes for /v1/audio/transcriptions and /v1/audio/translations (the same fields as
`openai.types.audio.*`; the tests parse every answer with the official client)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel


class Usage(BaseModel):
    type: Literal["duration"] = "duration"
    seconds: float


class Logprob(BaseModel):
    token: str
    logprob: float
    bytes: list[int]


class Transcription(BaseModel):
    text: str
    logprobs: list[Logprob] | None = None
    usage: Usage | None = None


class VerboseSegment(BaseModel):
    """A segment with the decoder's statistics; null where the provider does not report one."""

    id: int
    seek: int
    start: float
    end: float
    text: str
    tokens: list[int]
    temperature: float | None
    avg_logprob: float | None
    compression_ratio: float | None
    no_speech_prob: float | None


class VerboseWord(BaseModel):
    word: str
    start: float
    end: float


class TranscriptionVerbose(BaseModel):
    task: Literal["transcribe", "translate"] = "transcribe"
    language: str  # the language's English name, as OpenAI gives it ("english")
    duration: float
    text: str
    segments: list[VerboseSegment] | None = None
    words: list[VerboseWord] | None = None
    usage: Usage | None = None


class Translation(BaseModel):
    text: str


class StreamDelta(BaseModel):
    type: Literal["transcript.text.delta"] = "transcript.text.delta"
    delta: str
    logprobs: list[Logprob] | None = None


class StreamDone(BaseModel):
    type: Literal["transcript.text.done"] = "transcript.text.done"
    text: str
    logprobs: list[Logprob] | None = None
