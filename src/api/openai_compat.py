"""Whole-file transcription over REST (DESIGN §3.7).

POST /v1/audio/transcriptions is compatible with OpenAI's API (and its official clients): multipart
`file`, `model` (a hub provider name, or "whisper-1" = the default provider), `language`, `prompt`,
`response_format` json|text|verbose_json|srt|vtt, `temperature`, `timestamp_granularities[]`.
POST /v1/transcribe takes the same upload and answers the hub-native JSON (text, segments, words,
language, duration_ms, provider).
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any, Literal

from fastapi import APIRouter, File, Form, Request, Response, UploadFile
from fastapi.responses import JSONResponse, PlainTextResponse
from pydantic import BaseModel

from ..core.audio import PCM_ENCODINGS
from ..core.commands import AudioSpec, parse_start
from ..core.errors import ErrorCode, HubError
from ..core.transcribe import MAX_UPLOAD_BYTES, load_audio, load_raw, transcribe_audio
from ..core.validation import request_options, validate_start
from ..formats import format_segments
from ..providers.base import Provider, Task
from .errors import ERROR_RESPONSES, HubRoute, error_response

router = APIRouter(route_class=HubRoute, tags=["transcription (REST)"])

OPENAI_DEFAULT_MODELS = ("whisper-1", "default", "")
ResponseFormat = Literal["json", "text", "srt", "verbose_json", "vtt"]


class Transcription(BaseModel):
    text: str


class VerboseSegment(BaseModel):
    id: int
    seek: int = 0
    start: float
    end: float
    text: str
    tokens: list[int] = []
    temperature: float = 0.0
    avg_logprob: float = 0.0
    compression_ratio: float = 0.0
    no_speech_prob: float = 0.0


class VerboseWord(BaseModel):
    word: str
    start: float
    end: float


class TranscriptionVerbose(BaseModel):
    task: str = "transcribe"
    language: str
    duration: float
    text: str
    segments: list[VerboseSegment] | None = None
    words: list[VerboseWord] | None = None


class HubWord(BaseModel):
    word: str
    start_ms: int
    end_ms: int
    confidence: float


class HubSegment(BaseModel):
    start_ms: int
    end_ms: int
    text: str


class HubTranscription(BaseModel):
    text: str
    segments: list[HubSegment]
    words: list[HubWord]
    language: str | None
    duration_ms: int
    provider: str


def _provider(request: Request, name: str | None, language: str | None,
              audio: AudioSpec | None = None, prompt: str | None = None, task: Task = "transcribe",
              hotwords: list[str] | None = None) -> Provider:
    """The provider for an upload (named, or picked by `providers.routes`), its options checked as a
    streaming start and gRPC Recognize check them."""
    opts = request_options(provider=name or None, language=language, audio=audio, prompt=prompt, task=task,
                           hotwords=hotwords or None)
    provider: Provider = request.app.state.hub.providers.for_request(opts.provider, opts.language, opts.task)
    validate_start(opts, provider, request.app.state.hub.config.limits)
    return provider


def _raw_spec(encoding: str | None, sample_rate: int | None, channels: int | None) -> AudioSpec | None:
    """The upload's AudioSpec when the form says what the bytes are (None: a file with a header)."""
    if encoding is None and sample_rate is None and channels is None:
        return None
    fields = {k: v for k, v in (("encoding", encoding), ("sample_rate", sample_rate), ("channels", channels))
              if v is not None}
    return parse_start({"audio": fields}).audio  # unknown encodings: unsupported_encoding, as on every wire


async def _transcribe(request: Request, file: UploadFile, provider_name: str | None, language: str | None,
                      prompt: str | None, temperature: float | None, word_timestamps: bool,
                      raw: AudioSpec | None = None, task: Task = "transcribe",
                      hotwords: list[str] | None = None) -> dict[str, Any]:
    language = language or None
    provider = _provider(request, provider_name, language, raw, prompt or None, task, hotwords)
    raw = raw if raw is not None and raw.encoding in PCM_ENCODINGS else None  # containers: their header says
    if file.size is not None and file.size > MAX_UPLOAD_BYTES:
        raise HubError(ErrorCode.payload_too_large, f"file of {file.size} bytes exceeds the limit of {MAX_UPLOAD_BYTES}")
    data = await file.read()
    if not data:
        raise HubError(ErrorCode.invalid_audio, "the uploaded file is empty")
    if raw is not None:  # headerless PCM: the form says what it is
        audio = await asyncio.to_thread(load_raw, data, raw)
    else:
        audio = await asyncio.to_thread(load_audio, data)  # PyAV decoding must not block the loop
    return await transcribe_audio(provider, audio, language, word_timestamps=word_timestamps, prompt=prompt or None,
                                  temperature=temperature, task=task, hotwords=hotwords)


def _verbose(res: dict[str, Any], temperature: float, words: bool) -> dict[str, Any]:
    out = TranscriptionVerbose(
        language=res.get("language") or "", duration=res["duration_ms"] / 1000.0, text=res["text"],
        segments=[VerboseSegment(id=i, start=s["start_ms"] / 1000.0, end=s["end_ms"] / 1000.0, text=s["text"],
                                 temperature=temperature) for i, s in enumerate(res["segments"])],
        words=[VerboseWord(word=w["word"].strip(), start=w["start_ms"] / 1000.0, end=w["end_ms"] / 1000.0)
               for w in res["words"]] if words else None)
    return out.model_dump(exclude_none=True)


_FORMATS_DOC: dict[int | str, dict[str, Any]] = {
    200: {"description": "json: Transcription; verbose_json: TranscriptionVerbose; text/srt/vtt: plain text",
          "content": {"application/json": {"schema": {"anyOf": [
              {"$ref": "#/components/schemas/Transcription"},
              {"$ref": "#/components/schemas/TranscriptionVerbose"}]}},
              "text/plain": {"schema": {"type": "string"}}, "text/vtt": {"schema": {"type": "string"}}}},
    **ERROR_RESPONSES}


@router.post("/v1/audio/transcriptions", response_model=Transcription | TranscriptionVerbose,
             responses=_FORMATS_DOC, summary="Transcribe a file (OpenAI-compatible)")
async def audio_transcriptions(
    request: Request,
    file: Annotated[UploadFile, File(description="the audio file (wav, flac, mp3, ogg, webm, m4a, ...)")],
    model: Annotated[str, Form(description='a hub provider name, or "whisper-1" for the default provider')]
    = "whisper-1",
    language: Annotated[str | None, Form(description="ISO-639-1 code, e.g. en")] = None,
    prompt: Annotated[str | None, Form(description="text to condition the decoder on")] = None,
    response_format: Annotated[ResponseFormat, Form()] = "json",
    temperature: Annotated[float, Form(ge=0.0, le=1.0)] = 0.0,
    timestamp_granularities: Annotated[list[Literal["word", "segment"]] | None,
                                       Form(alias="timestamp_granularities[]",
                                            description="verbose_json only: word and/or segment")] = None,
    stream: Annotated[bool, Form(description="streaming answers are not supported: must be false")] = False,
) -> Response:
    try:
        if stream:
            raise HubError(ErrorCode.invalid_command, "stream=true is not supported here; stream audio over "
                           "/v1/ws, /v1/sessions (SSE), Socket.IO or gRPC instead")
        granularities = set(timestamp_granularities or ["segment"])
        words = response_format == "verbose_json" and "word" in granularities
        res = await _transcribe(request, file, None if model in OPENAI_DEFAULT_MODELS else model, language, prompt,
                                temperature, words)
    except HubError as e:
        return error_response(e)
    if response_format == "json":
        return JSONResponse({"text": res["text"]})
    if response_format == "verbose_json":
        return JSONResponse(_verbose(res, temperature, words))
    if response_format == "vtt":
        return PlainTextResponse(format_segments(res["segments"], "vtt"), media_type="text/vtt")
    return PlainTextResponse(format_segments(res["segments"], response_format))


@router.post("/v1/transcribe", response_model=HubTranscription, responses=ERROR_RESPONSES,
             summary="Transcribe a file (hub-native answer with words and provider)")
async def transcribe(
    request: Request,
    file: Annotated[UploadFile, File(description="the audio file (wav, flac, mp3, ogg, webm, m4a, ...)")],
    provider: Annotated[str | None, Form(description="a hub provider name; default: routed by language (providers.routes), else the hub's default")] = None,
    model: Annotated[str | None, Form(description="alias of provider (OpenAI spelling)")] = None,
    language: Annotated[str | None, Form()] = None,
    prompt: Annotated[str | None, Form()] = None,
    temperature: Annotated[float | None, Form(ge=0.0, le=1.0)] = None,
    word_timestamps: Annotated[bool, Form()] = True,
    encoding: Annotated[str | None, Form(description="headerless PCM in `file`: pcm_s16le, pcm_f32le, pcm_mulaw "
                                         "or pcm_alaw (files with a header need none)")] = None,
    sample_rate: Annotated[int | None, Form(description="rate of headerless PCM (default 16000)")] = None,
    channels: Annotated[int | None, Form(description="channels of headerless PCM (default 1)")] = None,
    task: Annotated[Task, Form(description="translate: English text out (multilingual Whisper)")] = "transcribe",
    hotwords: Annotated[list[str] | None, Form(description="boosted phrases (repeat the field)")] = None,
) -> Response:
    name = provider or (None if model in (None, *OPENAI_DEFAULT_MODELS) else model)
    try:
        raw = _raw_spec(encoding, sample_rate, channels)
        res = await _transcribe(request, file, name, language, prompt, temperature, word_timestamps, raw, task,
                                hotwords)
    except HubError as e:
        return error_response(e)
    return JSONResponse(HubTranscription.model_validate(res).model_dump())
