"""Deepgram-compatible pre-recorded transcription, POST /v1/listen (DESIGN §3.8): the audio is the request
body (raw, as Deepgram takes it; `{"url": ...}` is refused: the hub fetches no URLs), the query string is
Deepgram's (deepgram_wire.PrerecordedParams), the work is core.transcribe's, and the answer is Deepgram's
shape: `metadata` and `results.channels[].alternatives[]` with transcript, confidence, words and, when
asked, paragraphs. Refusals carry Deepgram's error body (err_code, err_msg, request_id)."""

from __future__ import annotations

import asyncio
import datetime
import hashlib
import uuid
from dataclasses import dataclass
from typing import Any

import numpy as np
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel

from ..core.audio import PCM_ENCODINGS
from ..core.commands import AudioSpec
from ..core.errors import ClientError, ErrorCode, HubError
from ..engine.routing import route_upload
from ..engine.transcribe import HubTranscription, load_audio, load_raw, transcribe_audio
from . import deepgram_wire as dg
from .deepgram_plan import SAMPLE_BYTES, Choice, choose

router = APIRouter()
PARAGRAPH_GAP_S = 1.0  # a pause this long between two sentences starts a new paragraph


class Sentence(BaseModel):
    text: str
    start: float
    end: float


class Paragraph(BaseModel):
    sentences: list[Sentence]
    num_words: int
    start: float
    end: float


class Paragraphs(BaseModel):
    transcript: str
    paragraphs: list[Paragraph]


class FileAlternative(dg.Alternative):
    paragraphs: Paragraphs | None = None


class FileChannel(BaseModel):
    alternatives: list[FileAlternative]
    detected_language: str | None = None


class FileResults(BaseModel):
    channels: list[FileChannel]


class FileMetadata(BaseModel):
    transaction_key: str = "deprecated"
    request_id: str
    sha256: str
    created: str
    duration: float
    channels: int
    models: list[str]
    model_info: dict[str, dg.ModelInfo]
    tags: list[str] | None = None


class FileResponse(BaseModel):
    metadata: FileMetadata
    results: FileResults


def paragraphs(res: HubTranscription) -> Paragraphs:
    """The transcript's segments as sentences, grouped into paragraphs at pauses."""
    groups: list[list[Sentence]] = []
    for seg in res.segments:
        if not seg.text.strip():
            continue
        s = Sentence(text=seg.text.strip(), start=seg.start_ms / 1000, end=seg.end_ms / 1000)
        if groups and s.start - groups[-1][-1].end < PARAGRAPH_GAP_S:
            groups[-1].append(s)
        else:
            groups.append([s])
    paras = [Paragraph(sentences=g, num_words=sum(len(s.text.split()) for s in g), start=g[0].start, end=g[-1].end)
             for g in groups]
    text = "\n\n".join(" ".join(s.text for s in g) for g in groups)
    return Paragraphs(transcript=text, paragraphs=paras)


def alternative(res: HubTranscription, p: dg.PrerecordedParams) -> FileAlternative:
    words = [dg.DgWord(word=dg.plain(w.word) or w.word.strip(), start=w.start_ms / 1000, end=w.end_ms / 1000,
                       confidence=w.confidence, punctuated_word=w.word.strip() if p.punctuated else dg.plain(w.word))
             for w in res.words if w.word.strip()]
    confidence = sum(w.confidence for w in words) / len(words) if words else (1.0 if res.text else 0.0)
    return FileAlternative(transcript=res.text.strip() if p.punctuated else dg.plain(res.text),
                           confidence=round(confidence, 4), words=words,
                           paragraphs=paragraphs(res) if p.paragraphs else None)


def answer(done: list[Transcribed], p: dg.PrerecordedParams, request_id: str, digest: str) -> FileResponse:
    """Deepgram's response: one channel per transcript (one, or each channel's with multichannel)."""
    first = done[0]
    uid = dg.model_uuid(first.res.provider)
    info = dg.ModelInfo(name=first.res.provider, version=first.version, arch="asrhub")
    created = datetime.datetime.now(datetime.UTC).isoformat().replace("+00:00", "Z")
    meta = FileMetadata(request_id=request_id, sha256=digest, created=created,
                        duration=max(t.res.duration_ms for t in done) / 1000, channels=(p.channels or 1) if p.split
                        else 1, models=[uid], model_info={uid: info}, tags=p.tag or None)
    channels = [FileChannel(alternatives=[alternative(t.res, p)], detected_language=t.res.language if t.detected
                            else None) for t in done]
    return FileResponse(metadata=meta, results=FileResults(channels=channels))


@dataclass(frozen=True)
class Transcribed:
    res: HubTranscription
    version: str     # the provider's model
    detected: bool   # the language was detected (or routed on)


async def transcribe_one(hub: Any, c: Choice, audio: np.ndarray) -> Transcribed:
    provider, language = c.provider, c.language
    if routed := await route_upload(hub.providers, c.model, language, "transcribe", audio):
        provider, language = routed
    res = await transcribe_audio(provider, audio, language, provider.capabilities.word_timestamps, c.prompt,
                                 hotwords=c.hotwords)
    return Transcribed(res, provider.model, language == "auto" or routed is not None)


def channel_audio(data: bytes, p: dg.PrerecordedParams) -> list[np.ndarray]:
    """The body as audio: one mono track, or (multichannel, raw) each channel's own."""
    if p.encoding is None or dg.ENCODINGS[p.encoding] not in PCM_ENCODINGS:
        return [load_audio(data)]
    spec = AudioSpec(encoding=dg.ENCODINGS[p.encoding], sample_rate=p.sample_rate or 16000, channels=p.channels or 1)
    if not p.split:
        return [load_raw(data, spec)]
    sample = SAMPLE_BYTES[spec.encoding]
    if len(data) % (sample * spec.channels):  # as load_raw refuses a partial frame of one track
        raise ClientError(ErrorCode.invalid_audio, f"{spec.encoding} audio with {spec.channels} channel(s) comes in "
                          f"{sample * spec.channels}-byte frames; got {len(data)} bytes")
    frames = np.frombuffer(data, dtype=np.dtype(f"V{sample}")).reshape(-1, spec.channels)
    mono = spec.model_copy(update={"channels": 1})
    return [load_raw(frames[:, i].tobytes(), mono) for i in range(spec.channels)]


async def read_body(request: Request) -> bytes:
    limit = int(request.app.state.hub.config.openai_compat.max_upload_mb * 1024 * 1024)
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise dg.ListenRefused(413, "PAYLOAD_TOO_LARGE", f"the audio is over the limit of {limit} bytes")
    if request.headers.get("content-type", "").split(";")[0].strip() == "application/json":
        raise dg.ListenRefused(400, "REMOTE_CONTENT_ERROR", "this hub does not fetch audio from URLs: send the "
                               "audio itself as the request body (Content-Type: audio/*)", "url")
    if not body:
        raise dg.ListenRefused(400, "INVALID_AUDIO", "the request body holds no audio", "body")
    return bytes(body)


# not in /openapi.json yet: its query string and raw body are Deepgram's, documented in PROTOCOL.md
@router.post("/v1/listen", response_model=FileResponse, include_in_schema=False)
async def listen_file(request: Request) -> Response:
    request_id = str(uuid.uuid4())
    hub = request.app.state.hub
    try:
        p = dg.parse_params(list(request.query_params.multi_items()), dg.PrerecordedParams,
                            dg.PRERECORDED_NOT_SERVED)
        c = choose(hub, p, detect=p.detect_language)
        data = await read_body(request)
        try:
            tracks = await asyncio.to_thread(channel_audio, data, p)  # PyAV decoding must not block the loop
            done = [await transcribe_one(hub, c, audio) for audio in tracks]
        except HubError as e:
            status = 400 if e.code in (ErrorCode.invalid_audio, ErrorCode.unsupported_encoding) else e.http_status
            raise dg.ListenRefused(status, e.code.value.upper(), e.message) from None
    except dg.ListenRefused as e:
        return dg.refusal(e, request_id)
    body = answer(done, p, request_id, hashlib.sha256(data).hexdigest())
    return JSONResponse(body.model_dump(exclude_none=True), headers={"dg-request-id": request_id})
