"""Whole-file transcription over REST (DESIGN §3.7, §3.8).

POST /v1/audio/transcriptions and /v1/audio/translations speak OpenAI's API (and its official clients):
multipart `file`, `model` (an alias from `openai_compat.aliases`, or a hub provider name), `language`,
`prompt`, `response_format` json|text|verbose_json|srt|vtt, `temperature`, `timestamp_granularities[]`,
`include[]` (logprobs), `chunking_strategy` ("auto" or server_vad settings), `stream` (SSE deltas, see
openai_stream). Errors use OpenAI's shape (openai_errors). POST /v1/transcribe takes the same upload and
answers the hub-native JSON (text, segments, words, language, duration_ms, provider).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal

from fastapi import APIRouter, File, Form, Request, Response, UploadFile
from fastapi.responses import JSONResponse, PlainTextResponse, StreamingResponse
from pydantic import BaseModel

from ..core.audio import PCM_ENCODINGS
from ..core.commands import AudioSpec, Hotword, parse_start
from ..core.errors import ErrorCode, HubError
from ..core.language import model_language, parse_language
from ..core.validation import request_options
from ..engine.routing import route_upload
from ..engine.transcribe import (
    MAX_UPLOAD_BYTES,
    FileTranscript,
    HubTranscription,
    SplitOptions,
    load_audio,
    load_raw,
    transcribe_audio,
    transcribe_file,
)
from ..formats import format_segments
from ..providers.base import Provider, Task, TranscribeOptions
from ..providers.checks import validate_start
from .binding import open_session
from .errors import ERROR_RESPONSES, HubRoute, error_response
from .languages import language_code, language_name
from .openai_errors import (
    OPENAI_ERROR_RESPONSES,
    OpenAIRoute,
    ParamError,
    field_of,
    openai_error_body,
    param,
    sent_as,
)
from .openai_models import hub_choice, resolve, routed_start
from .openai_stream import piece_stream, session_stream, start_for
from .openai_wire import (
    Logprob,
    StreamDelta,
    StreamDone,
    Transcription,
    TranscriptionVerbose,
    Translation,
    Usage,
    VerboseSegment,
    VerboseWord,
)

log = logging.getLogger(__name__)
router = APIRouter(route_class=OpenAIRoute, tags=["OpenAI-compatible"])
native_router = APIRouter(route_class=HubRoute, tags=["transcription (REST)"])

ResponseFormat = Literal["json", "text", "srt", "verbose_json", "vtt"]
#: every form field the transcription route reads; anything else is refused, not ignored
KNOWN_FIELDS = {"file", "model", "language", "prompt", "response_format", "temperature", "timestamp_granularities[]",
                "stream", "include[]", "chunking_strategy", "chunking_strategy[type]",
                "chunking_strategy[silence_duration_ms]", "chunking_strategy[prefix_padding_ms]",
                "chunking_strategy[threshold]", "languages[]", "keywords[]"}
#: every form field the translation route reads (OpenAI's translations take no `language`: always English)
TRANSLATION_FIELDS = {"file", "model", "prompt", "response_format", "temperature"}


async def _known_fields(request: Request, known: set[str], route: str) -> None:
    """A form field the route does not read is refused (param: that field), never silently ignored."""
    unknown = sorted(set((await request.form()).keys()) - known)
    if not unknown:
        return
    why = (": translations always answer in English; transcriptions take `language`"
           if unknown[0] == "language" and route == "translations" else "")
    raise ParamError(ErrorCode.invalid_command, f"unsupported parameter '{unknown[0]}' on /v1/audio/{route}{why}",
                     unknown[0])


def _check(request: Request, provider: Provider, language: str | None, prompt: str | None = None,
           task: Task = "transcribe") -> None:
    """The options checked as a streaming start checks them (language tag, prompt, task); the field at
    fault is OpenAI's `param`."""
    try:
        opts = request_options(provider=provider.name, language=language, prompt=prompt, task=task)
        validate_start(opts, provider, request.app.state.hub.config.limits)
    except HubError as e:
        raise ParamError(e.code, e.message, field_of(e, "model")) from None


async def _read_audio(request: Request, file: UploadFile) -> Any:
    limit = int(request.app.state.hub.config.openai_compat.max_upload_mb * 1024 * 1024)
    if file.size is not None and file.size > limit:
        raise ParamError(ErrorCode.payload_too_large, f"file of {file.size} bytes exceeds the limit of {limit}", "file")
    data = await file.read()
    if not data:
        raise ParamError(ErrorCode.invalid_audio, "the uploaded file is empty", "file")
    try:
        return await asyncio.to_thread(load_audio, data)  # PyAV decoding must not block the loop
    except HubError as e:
        raise ParamError(e.code, e.message, "file") from None


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
                      hotwords: list[str] | None = None) -> HubTranscription:
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
    if routed := await route_upload(request.app.state.hub.providers, provider_name, language, task, audio):
        provider, language = routed  # no language: the one the speech is in (DESIGN §5)
    return await transcribe_audio(provider, audio, language, word_timestamps=word_timestamps, prompt=prompt or None,
                                  temperature=temperature, task=task, hotwords=hotwords)


def _chunking(raw: str | None, kind: str | None, silence: int | None, prefix: int | None,
              threshold: float | None) -> tuple[SplitOptions | None, float | None]:
    """OpenAI `chunking_strategy`: "auto", a JSON object, or the SDK's bracketed form fields."""
    if raw and raw.strip().startswith("{"):
        try:
            obj = json.loads(raw)
        except ValueError:
            raise ParamError(ErrorCode.invalid_command, "chunking_strategy is not valid JSON", "chunking_strategy") \
                from None
        if not isinstance(obj, dict):
            raise ParamError(ErrorCode.invalid_command, "chunking_strategy must be \"auto\" or an object",
                             "chunking_strategy")
        kind, silence, prefix, threshold = (obj.get("type"), obj.get("silence_duration_ms"),
                                            obj.get("prefix_padding_ms"), obj.get("threshold"))
    elif raw not in (None, "", "auto"):
        raise ParamError(ErrorCode.invalid_command, f"chunking_strategy {raw!r}: use \"auto\" or "
                         "{\"type\": \"server_vad\", ...}", "chunking_strategy")
    if kind is None and silence is None and prefix is None and threshold is None:
        return None, None
    if kind != "server_vad":
        raise ParamError(ErrorCode.invalid_command, f"chunking_strategy type {kind!r}: only \"server_vad\" is known",
                         "chunking_strategy")
    try:
        sil = int(silence) if silence is not None else 500
        pre = int(prefix) if prefix is not None else 300
        thr = float(threshold) if threshold is not None else None
    except (TypeError, ValueError):
        raise ParamError(ErrorCode.invalid_command, "chunking_strategy values must be numbers",
                         "chunking_strategy") from None
    if not (50 <= sil <= 10_000 and 0 <= pre <= 2_000 and (thr is None or 0 < thr < 1)):
        raise ParamError(ErrorCode.invalid_command, "chunking_strategy out of range: silence_duration_ms 50..10000, "
                         "prefix_padding_ms 0..2000, threshold 0..1 (exclusive)", "chunking_strategy")
    # the file splitter runs the WebRTC VAD: a higher threshold = a more aggressive mode
    mode = 2 if thr is None else min(3, int(thr * 4))
    return SplitOptions(silence_ms=sil, pre_roll_ms=pre, aggressiveness=mode), thr


def _logprobs(res: FileTranscript) -> list[Logprob] | None:
    if res.logprobs is None:
        return None
    return [Logprob(token=t.token, logprob=round(t.logprob, 6), bytes=t.bytes) for t in res.logprobs]


def _verbose(res: FileTranscript, task: Literal["transcribe", "translate"], words: bool,
             segments: bool) -> TranscriptionVerbose:
    return TranscriptionVerbose(
        task=task, language=language_name(res.language), duration=res.duration_ms / 1000.0, text=res.text,
        segments=[VerboseSegment(id=i, seek=s.seek, start=s.start_ms / 1000.0, end=s.end_ms / 1000.0, text=s.text,
                                 tokens=list(s.tokens), temperature=s.temperature, avg_logprob=s.avg_logprob,
                                 compression_ratio=s.compression_ratio, no_speech_prob=s.no_speech_prob)
                  for i, s in enumerate(res.segments)] if segments else None,
        words=[VerboseWord(word=w.word.strip(), start=w.start_ms / 1000.0, end=w.end_ms / 1000.0)
               for w in res.words] if words else None,
        usage=Usage(seconds=res.duration_ms / 1000.0) if task == "transcribe" else None)


def _answer(res: FileTranscript, fmt: ResponseFormat, task: Literal["transcribe", "translate"], words: bool,
            segments: bool) -> Response:
    if fmt == "json":
        body: BaseModel = (Transcription(text=res.text, logprobs=_logprobs(res), usage=Usage(
            seconds=res.duration_ms / 1000.0)) if task == "transcribe" else Translation(text=res.text))
        return JSONResponse(body.model_dump(exclude_none=True))
    if fmt == "verbose_json":
        return JSONResponse(_verbose(res, task, words, segments).model_dump(exclude_none=True))
    if fmt == "vtt":
        return PlainTextResponse(format_segments(res.segments, "vtt"), media_type="text/vtt")
    return PlainTextResponse(format_segments(res.segments, fmt))


async def _sse(events: AsyncIterator[StreamDelta | StreamDone]) -> AsyncIterator[bytes]:
    try:
        async for ev in events:
            yield f"data: {ev.model_dump_json(exclude_none=True)}\n\n".encode()
    except HubError as e:  # mid-stream: OpenAI's error object as the last event (the SDK raises it)
        yield f"data: {openai_error_body(e).model_dump_json()}\n\n".encode()
    except Exception as e:  # never a silently truncated stream
        log.exception("transcription stream failed")
        err = HubError(ErrorCode.internal, f"internal error: {type(e).__name__}")
        yield f"data: {openai_error_body(err).model_dump_json()}\n\n".encode()


_FORMATS_DOC: dict[int | str, dict[str, Any]] = {
    200: {"description": "json: Transcription; verbose_json: TranscriptionVerbose; text/srt/vtt: plain text; "
                         "stream=true: text/event-stream of transcript.text.delta / transcript.text.done",
          "content": {"application/json": {"schema": {"anyOf": [
              {"$ref": "#/components/schemas/Transcription"},
              {"$ref": "#/components/schemas/TranscriptionVerbose"}]}},
              "text/plain": {"schema": {"type": "string"}}, "text/vtt": {"schema": {"type": "string"}},
              "text/event-stream": {"schema": {"anyOf": [{"$ref": "#/components/schemas/StreamDelta"},
                                                         {"$ref": "#/components/schemas/StreamDone"}]}}}},
    **OPENAI_ERROR_RESPONSES}


@router.post("/v1/audio/transcriptions", response_model=Transcription | TranscriptionVerbose | StreamDelta | StreamDone,
             responses=_FORMATS_DOC, summary="Transcribe a file (OpenAI-compatible)")
async def audio_transcriptions(
    request: Request,
    file: Annotated[UploadFile, File(description="the audio file (wav, flac, mp3, ogg, webm, m4a, ...)")],
    model: Annotated[str, Form(description="an alias (openai_compat.aliases: whisper-1, gpt-4o-transcribe, "
                                           "gpt-4o-mini-transcribe) or a hub provider name")] = "whisper-1",
    language: Annotated[str | None, Form(description="ISO-639-1 code (e.g. en) or English name")] = None,
    prompt: Annotated[str | None, Form(description="text to condition the decoder on")] = None,
    response_format: Annotated[ResponseFormat, Form()] = "json",
    temperature: Annotated[float, Form(ge=0.0, le=1.0)] = 0.0,
    timestamp_granularities: Annotated[list[Literal["word", "segment"]] | None,
                                       Form(alias="timestamp_granularities[]",
                                            description="verbose_json only: word and/or segment")] = None,
    stream: Annotated[bool, Form(description="answer text/event-stream: transcript.text.delta while decoding, "
                                             "then transcript.text.done")] = False,
    include: Annotated[list[Literal["logprobs"]] | None,
                       Form(alias="include[]", description="logprobs: token log-probabilities (json or stream)")]
    = None,
    chunking_strategy: Annotated[str | None, Form(description='"auto" or a JSON server_vad object')] = None,
    cs_type: Annotated[str | None, Form(alias="chunking_strategy[type]")] = None,
    cs_silence: Annotated[int | None, Form(alias="chunking_strategy[silence_duration_ms]")] = None,
    cs_prefix: Annotated[int | None, Form(alias="chunking_strategy[prefix_padding_ms]")] = None,
    cs_threshold: Annotated[float | None, Form(alias="chunking_strategy[threshold]")] = None,
    languages: Annotated[list[str] | None, Form(alias="languages[]", description="possible languages: one is used "
                                                "as `language`, several mean detection")] = None,
    keywords: Annotated[list[str] | None, Form(alias="keywords[]", description="terms to expect: given to the "
                                               "decoder as its prompt when there is no `prompt`")] = None,
) -> Response:
    await _known_fields(request, KNOWN_FIELDS, "transcriptions")
    lang, field = _language_of(language, languages)
    sent = {"language": field, "prompt": "prompt" if prompt or not keywords else "keywords[]"}
    with sent_as(sent), param("model", guess=True):  # a language the model cannot do is the language's fault
        provider = resolve(request, model, lang)
        if keywords and not prompt:
            prompt = ", ".join(k.strip() for k in keywords if k.strip())
        _check(request, provider, lang, prompt or None)
    split, threshold = _chunking(chunking_strategy, cs_type, cs_silence, cs_prefix, cs_threshold)
    logprobs = "logprobs" in (include or [])
    _check_output(provider, response_format, logprobs, stream)
    granularities = set(timestamp_granularities or ["segment"])
    words = response_format == "verbose_json" and "word" in granularities
    audio = await _read_audio(request, file)
    hub = request.app.state.hub
    if (not stream or logprobs) and hub_choice(hub, model) \
            and (routed := await route_upload(hub.providers, None, lang, "transcribe", audio)):
        provider, lang = routed  # whisper-1 with no language: detected, as OpenAI does (a session routes itself)
        _check(request, provider, lang, prompt or None)
    locale = lang or provider.language
    opts = TranscribeOptions(language=model_language(locale), word_timestamps=words, initial_prompt=prompt or None,
                             temperature=temperature, logprobs=logprobs)
    if stream:
        return await _stream_answer(request, provider, model, audio, opts, lang, split, threshold)
    with param("file"):  # what the decode refuses is the file's fault (its failures, 5xx, are no field's)
        res = await transcribe_file(provider, audio, opts, split, locale=locale)
    answer = _answer(res, response_format, "transcribe", words, "segment" in granularities or not words)
    answer.headers["x-asrhub-provider"] = provider.name  # which engine decoded it (routing by language)
    return answer


def _language_of(language: str | None, languages: list[str] | None) -> tuple[str | None, str]:
    """The request's language code and the field that said it: `language`, else `languages[]` (one tag is
    that language, several mean detection). Each tag must parse (ParamError naming its field)."""
    for tag in languages or []:
        with param("languages[]"):
            parse_language(language_code(tag) or "")
    field = "language" if language or not languages else "languages[]"
    if not language and languages:
        language = languages[0] if len(languages) == 1 else "auto"
    lang = language_code(language)
    with param(field):
        if lang is not None:
            parse_language(lang)  # a malformed tag is the field's fault, whichever check meets it first
    return lang, field


def _check_output(provider: Provider, response_format: ResponseFormat, logprobs: bool, stream: bool) -> None:
    """What the answer is asked to be, against what it can be: logprobs in json from a provider that has
    them, a stream of json or text."""
    if logprobs and response_format != "json":
        raise ParamError(ErrorCode.invalid_command, "include[]=logprobs needs response_format json", "include[]")
    if logprobs and not provider.capabilities.logprobs:
        raise ParamError(ErrorCode.invalid_command, f"provider '{provider.name}' does not report token "
                         "log-probabilities", "include[]")
    if stream and response_format not in ("json", "text"):
        raise ParamError(ErrorCode.invalid_command, "stream=true answers transcript.text events: use response_format "
                         "json or text", "stream")


async def _stream_answer(request: Request, provider: Provider, model: str, audio: Any, opts: TranscribeOptions,
                         lang: str | None, split: SplitOptions | None, threshold: float | None) -> Response:
    """stream=true: transcript.text deltas as SSE, from a hub session (as a live client's), or piece by
    piece when logprobs are asked (session finals carry no token log-probabilities)."""
    if opts.logprobs:
        events = piece_stream(provider, audio, opts, split)
    else:
        hub = request.app.state.hub
        start = routed_start(hub, model, start_for(provider, lang, split, threshold, opts.initial_prompt))
        session = await open_session(hub.service, start, "openai",
                                     request.scope.get("asrhub.api_key"))  # refused: an HTTP error
        events = session_stream(hub.service, session, audio)
    return StreamingResponse(_sse(events), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


_TRANSLATION_DOC: dict[int | str, dict[str, Any]] = {
    200: {"description": "json: Translation; verbose_json: TranscriptionVerbose; text/srt/vtt: plain text",
          "content": {"application/json": {"schema": {"anyOf": [
              {"$ref": "#/components/schemas/Translation"}, {"$ref": "#/components/schemas/TranscriptionVerbose"}]}},
              "text/plain": {"schema": {"type": "string"}}, "text/vtt": {"schema": {"type": "string"}}}},
    **OPENAI_ERROR_RESPONSES}


@router.post("/v1/audio/translations", response_model=Translation | TranscriptionVerbose,
             responses=_TRANSLATION_DOC, summary="Translate speech into English text (OpenAI-compatible)")
async def audio_translations(
    request: Request,
    file: Annotated[UploadFile, File(description="the audio file, any language the model knows")],
    model: Annotated[str, Form(description="an alias or a hub provider name; it must be a multilingual Whisper")]
    = "whisper-1",
    prompt: Annotated[str | None, Form(description="English text to condition the decoder on")] = None,
    response_format: Annotated[ResponseFormat, Form()] = "json",
    temperature: Annotated[float, Form(ge=0.0, le=1.0)] = 0.0,
) -> Response:
    await _known_fields(request, TRANSLATION_FIELDS, "translations")
    with param("model", guess=True):  # a language the model cannot do is the language's fault
        provider = resolve(request, model, None, "translate")
    if not provider.capabilities.translate:
        raise ParamError(ErrorCode.invalid_command, f"provider '{provider.name}' (model '{provider.model}') cannot "
                         "translate: translation needs a multilingual Whisper model", "model")
    _check(request, provider, None, prompt or None, "translate")
    audio = await _read_audio(request, file)
    opts = TranscribeOptions(initial_prompt=prompt or None, temperature=temperature, task="translate")
    with param("file"):
        res = await transcribe_file(provider, audio, opts)
    return _answer(res, response_format, "translate", False, True)


@native_router.post("/v1/transcribe", response_model=HubTranscription, responses=ERROR_RESPONSES,
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
    hotwords: Annotated[list[Hotword] | None, Form(max_length=100, description="boosted phrases (repeat the field; "
                                                   "at most 100, each 1-100 characters)")] = None,
) -> Response:
    aliases: dict[str, str] = request.app.state.hub.config.openai_compat.aliases
    name = provider or (aliases[model] or None if model in aliases else
                        None if model in (None, "", "default") else model)
    try:
        raw = _raw_spec(encoding, sample_rate, channels)
        res = await _transcribe(request, file, name, language, prompt, temperature, word_timestamps, raw, task,
                                hotwords)
    except HubError as e:
        return error_response(e)
    return JSONResponse(res.model_dump())
