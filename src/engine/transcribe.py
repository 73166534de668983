"""Whole-file transcription (CLI `transcribe`, REST uploads): decode, split long audio at pauses,
decode each piece with the chosen provider."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel

from ..core.audio import HUB_RATE, PCM_ENCODINGS, AudioChunk, float_to_int16, samples_to_ms
from ..core.commands import AudioSpec
from ..core.errors import ErrorCode, HubError
from ..core.language import model_language
from ..operators.endpoint import Endpointer, EndpointOptions
from ..operators.resample import Resampler, downmix
from ..operators.vad_webrtc import WebRtcVad
from ..providers.base import Provider, Task, TokenLogprob, TranscribeOptions, WordTiming
from ..providers.localise import localise_result

MAX_PIECE_S = 28.0
MAX_UPLOAD_BYTES = 100 * 1024 * 1024  # the largest whole file a REST or gRPC upload may carry


def load_audio(data: bytes) -> np.ndarray:
    """Any container/codec PyAV knows -> int16 mono at the hub rate."""
    from ..operators.decode_av import decode_file

    block = decode_file(data)
    if block.frames == 0:
        raise HubError(ErrorCode.invalid_audio, "the file holds no audio samples")
    return float_to_int16(Resampler(block.sample_rate).process(downmix(block.samples), last=True))


def load_raw(data: bytes, spec: AudioSpec) -> np.ndarray:
    """Headerless PCM (pcm_s16le, pcm_f32le, pcm_mulaw, pcm_alaw) at spec's rate and channels ->
    int16 mono at the hub rate; containers go to load_audio (their own header says the rest)."""
    if spec.encoding not in PCM_ENCODINGS:
        return load_audio(data)
    from ..operators.decode import PcmDecoder

    frames = PcmDecoder(spec.encoding, spec.sample_rate, spec.channels).feed(data)
    if len(frames) == 0:
        raise HubError(ErrorCode.invalid_audio, "the upload holds no audio samples")
    return float_to_int16(Resampler(spec.sample_rate).process(downmix(frames), last=True))


@dataclass(frozen=True)
class SplitOptions:
    """How a long file is cut into pieces at pauses (OpenAI `chunking_strategy` server_vad maps here)."""

    silence_ms: int = 500
    pre_roll_ms: int = 200
    aggressiveness: int = 2   # WebRTC VAD mode 0..3
    max_s: float = MAX_PIECE_S


def split_at_pauses(audio: np.ndarray, max_s: float = MAX_PIECE_S,
                    split: SplitOptions | None = None) -> list[tuple[int, int]]:
    """Pieces of at most `max_s`, cut in pauses found by the WebRTC VAD."""
    so = split or SplitOptions(max_s=max_s)
    if len(audio) <= so.max_s * HUB_RATE:
        return [(0, len(audio))]
    ep = Endpointer(WebRtcVad(so.aggressiveness), EndpointOptions(True, 150, so.silence_ms, so.pre_roll_ms, so.max_s))
    pieces: list[tuple[int, int]] = []
    start: int | None = None
    from ..operators.base import SpeechEnd, SpeechStart
    items = ep.push(AudioChunk(audio, 0)) + ep.flush(len(audio))
    for it in items:
        if isinstance(it, SpeechStart):
            start = it.audio_start
        elif isinstance(it, SpeechEnd) and start is not None:
            pieces.append((start, min(len(audio), it.offset + HUB_RATE // 5)))
            start = None
    return pieces


@dataclass(frozen=True)
class FileSegment:
    """A segment of a whole-file transcript: times in the file's timeline, the decoder's statistics."""

    start_ms: int
    end_ms: int
    text: str
    seek: int = 0      # the piece's offset in 10 ms frames (Whisper's `seek`)
    avg_logprob: float | None = None
    no_speech_prob: float | None = None
    compression_ratio: float | None = None
    temperature: float | None = None
    tokens: tuple[int, ...] = ()


@dataclass
class FileTranscript:
    text: str
    segments: list[FileSegment]
    words: list[WordTiming]
    language: str | None
    duration_ms: int
    provider: str
    logprobs: list[TokenLogprob] | None = None

    def hub(self) -> HubTranscription:
        """The hub-native answer (POST /v1/transcribe, gRPC Recognize, CLI)."""
        return HubTranscription(
            text=self.text, segments=[HubSegment(start_ms=s.start_ms, end_ms=s.end_ms, text=s.text) for s in self.segments],
            words=[HubWord(word=w.word, start_ms=w.start_ms, end_ms=w.end_ms, confidence=round(w.confidence, 4))
                   for w in self.words],
            language=self.language, duration_ms=self.duration_ms, provider=self.provider)


class HubWord(BaseModel):
    word: str
    start_ms: int
    end_ms: int
    confidence: float


class HubSegment(BaseModel):
    start_ms: int
    end_ms: int
    text: str


class HubTranscription(BaseModel):  # the hub's own whole-file answer (no docstring: the OpenAPI schema is as before)
    text: str
    segments: list[HubSegment]
    words: list[HubWord]
    language: str | None
    duration_ms: int
    provider: str


async def transcribe_file(provider: Provider, audio: np.ndarray, opts: TranscribeOptions,
                          split: SplitOptions | None = None, progress: Any = None,
                          locale: str | None = None) -> FileTranscript:
    """Decode `audio` (int16 mono, hub rate) piece by piece. `locale`: the requested BCP-47 tag (the text
    follows its script); `opts.language` is the model's code for it (None: the provider's default)."""
    segments: list[FileSegment] = []
    words: list[WordTiming] = []
    logprobs: list[TokenLogprob] | None = [] if opts.logprobs and provider.capabilities.logprobs else None
    lang = None
    for a, b in split_at_pauses(audio, split=split):
        res = localise_result(await provider.transcribe(audio[a:b], opts), locale)
        base = samples_to_ms(a)
        lang = res.language or lang
        if res.segments:
            segments.extend(FileSegment(base + int(s.start * 1000), base + int(s.end * 1000), s.text, a // 160,
                                        s.avg_logprob, s.no_speech_prob, s.compression_ratio, s.temperature, s.tokens)
                            for s in res.segments)
        elif res.text:
            segments.append(FileSegment(base, samples_to_ms(b), res.text, a // 160))
        words.extend(WordTiming(w.word, base + w.start_ms, base + w.end_ms, w.confidence) for w in res.words)
        if logprobs is not None and res.logprobs:
            logprobs.extend(res.logprobs)  # Whisper tokens carry their leading space
        if progress is not None:
            progress.update((b - a) / HUB_RATE)
    return FileTranscript(" ".join(s.text for s in segments).strip(), segments, words, lang or locale or opts.language,
                          samples_to_ms(len(audio)), provider.name, logprobs)


async def transcribe_audio(provider: Provider, audio: np.ndarray, language: str | None = None,
                           word_timestamps: bool = True, prompt: str | None = None,
                           progress: Any = None, temperature: float | None = None, task: Task = "transcribe",
                           hotwords: list[str] | tuple[str, ...] | None = None) -> HubTranscription:
    """`language`: a BCP-47 tag or "auto" (the text follows its script); `prompt`/`hotwords`: the client's."""
    locale = language or provider.language
    opts = TranscribeOptions(language=model_language(locale), word_timestamps=word_timestamps,
                             initial_prompt=prompt or None, temperature=temperature, task=task,
                             hotwords=tuple(hotwords or ()))
    return (await transcribe_file(provider, audio, opts, progress=progress, locale=locale)).hub()


async def transcribe_files(cfg: Any, files: list[Path], provider_name: str | None, language: str | None,
                           progress: bool = True) -> list[tuple[Path, HubTranscription | HubError]]:
    from tqdm import tqdm

    from ..providers.registry import ProviderSet
    from .routing import route_upload
    from .scheduler import Scheduler

    sc = cfg.scheduler
    sched = Scheduler(sc.workers, sc.max_queue, sc.max_batch, sc.max_partial_batch, sc.partial_workers)
    await sched.start()
    providers = ProviderSet(cfg.providers, sched)
    out: list[tuple[Path, HubTranscription | HubError]] = []
    try:
        await providers.load()
        provider = providers.resolve(provider_name, language)  # providers.routes
        audios: list[tuple[Path, np.ndarray | HubError]] = []
        for f in files:
            try:
                audios.append((f, load_audio(f.read_bytes())))
            except (OSError, HubError) as e:
                audios.append((f, e if isinstance(e, HubError) else HubError(ErrorCode.invalid_audio, str(e))))
        total = sum(len(a) for _, a in audios if isinstance(a, np.ndarray)) / HUB_RATE
        bar = tqdm(total=round(total, 1), unit="s", desc="transcribing", disable=not progress or total < 30,
                   file=__import__("sys").stderr)
        for f, a in audios:
            if isinstance(a, HubError):
                out.append((f, a))
                continue
            routed = await route_upload(providers, provider_name, language, "transcribe", a)  # no language: detected
            p, lang = routed if routed is not None else (provider, language)
            out.append((f, await transcribe_audio(p, a, lang, progress=bar)))
        bar.close()
    finally:
        await providers.close()
        await sched.stop()
    return out
