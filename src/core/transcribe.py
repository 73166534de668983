"""Whole-file transcription (CLI `transcribe`, REST uploads): decode, split long audio at pauses,
decode each piece with the chosen provider."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..operators.endpoint import Endpointer, EndpointOptions
from ..operators.resample import Resampler, downmix
from ..operators.vad_webrtc import WebRtcVad
from ..providers.base import Provider, Task, TranscribeOptions
from ..providers.localise import localise_result
from .audio import HUB_RATE, PCM_ENCODINGS, AudioChunk, float_to_int16, samples_to_ms
from .commands import AudioSpec
from .errors import ErrorCode, HubError
from .language import model_language

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


def split_at_pauses(audio: np.ndarray, max_s: float = MAX_PIECE_S) -> list[tuple[int, int]]:
    """Pieces of at most `max_s`, cut in pauses found by the WebRTC VAD."""
    if len(audio) <= max_s * HUB_RATE:
        return [(0, len(audio))]
    ep = Endpointer(WebRtcVad(2), EndpointOptions(True, 150, 500, 200, max_s))
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


async def transcribe_audio(provider: Provider, audio: np.ndarray, language: str | None = None,
                           word_timestamps: bool = True, prompt: str | None = None,
                           progress: Any = None, temperature: float | None = None, task: Task = "transcribe",
                           hotwords: list[str] | tuple[str, ...] | None = None) -> dict[str, Any]:
    """`language`: a BCP-47 tag or "auto" (the text follows its script); `prompt`/`hotwords`: the client's."""
    segments: list[dict[str, Any]] = []
    words: list[dict[str, Any]] = []
    lang = None
    locale = language or provider.language
    opts = TranscribeOptions(language=model_language(locale), word_timestamps=word_timestamps,
                             initial_prompt=prompt or None, temperature=temperature, task=task,
                             hotwords=tuple(hotwords or ()))
    for a, b in split_at_pauses(audio):
        res = localise_result(await provider.transcribe(audio[a:b], opts), locale)
        base = samples_to_ms(a)
        lang = res.language or lang
        if res.segments:
            for s in res.segments:
                segments.append({"start_ms": base + int(s["start"] * 1000), "end_ms": base + int(s["end"] * 1000),
                                 "text": s["text"]})
        elif res.text:
            segments.append({"start_ms": base, "end_ms": samples_to_ms(b), "text": res.text})
        words.extend({"word": w.word, "start_ms": base + w.start_ms, "end_ms": base + w.end_ms,
                      "confidence": round(w.confidence, 4)} for w in res.words)
        if progress is not None:
            progress.update((b - a) / HUB_RATE)
    return {"text": " ".join(s["text"] for s in segments).strip(), "segments": segments, "words": words,
            "language": lang or locale, "duration_ms": samples_to_ms(len(audio)), "provider": provider.name}


async def transcribe_files(cfg: Any, files: list[Path], provider_name: str | None, language: str | None,
                           progress: bool = True) -> list[tuple[Path, Any]]:
    from tqdm import tqdm

    from ..providers.registry import ProviderSet
    from .scheduler import Scheduler

    sc = cfg.scheduler
    sched = Scheduler(sc.workers, sc.max_queue, sc.max_batch, sc.max_partial_batch, sc.partial_workers)
    await sched.start()
    providers = ProviderSet(cfg.providers, sched)
    out: list[tuple[Path, Any]] = []
    try:
        await providers.load()
        provider = providers.resolve(provider_name, language)  # providers.routes
        audios: list[tuple[Path, Any]] = []
        for f in files:
            try:
                audios.append((f, load_audio(f.read_bytes())))
            except (OSError, HubError) as e:
                audios.append((f, e if isinstance(e, HubError) else HubError(ErrorCode.invalid_audio, str(e))))
        total = sum(len(a) for _, a in audios if isinstance(a, np.ndarray)) / HUB_RATE
        bar = tqdm(total=round(total, 1), unit="s", desc="transcribing", disable=not progress or total < 30,
                   file=__import__("sys").stderr)
        for f, a in audios:
            if isinstance(a, Exception):
                out.append((f, a))
                continue
            out.append((f, await transcribe_audio(provider, a, language, progress=bar)))
        bar.close()
    finally:
        await providers.close()
        await sched.stop()
    return out
