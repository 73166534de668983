"""Audio sources for `stream()`: bytes, a file path, or an (async) iterator of chunks.

Bytes and files are sent as they are, never decoded here: their encoding is recognised from the
container's magic bytes (wav, flac, mp3, ogg, webm; anything else is raw PCM, `pcm_s16le` at 16 kHz mono
unless the options say otherwise; `.ulaw`/`.alaw` files are G.711 at 8 kHz) and declared in `start.audio`, and the hub decodes them. An iterator's
chunks are sent one message each, in the encoding the options declare (default pcm_s16le 16 kHz mono).
"""

from __future__ import annotations

import asyncio
import os
import struct
import time
from collections.abc import AsyncIterable, AsyncIterator, Iterable
from dataclasses import dataclass
from pathlib import Path

from ..core.commands import AudioSpec

AudioSource = bytes | bytearray | memoryview | str | os.PathLike[str] | AsyncIterable[bytes] | Iterable[bytes]

PCM_WIDTH = {"pcm_s16le": 2, "pcm_f32le": 4, "pcm_mulaw": 1, "pcm_alaw": 1}
RAW_SUFFIXES = {".pcm": "pcm_s16le", ".raw": "pcm_s16le", ".s16": "pcm_s16le", ".f32": "pcm_f32le",
                ".ulaw": "pcm_mulaw", ".mulaw": "pcm_mulaw", ".alaw": "pcm_alaw"}
CONTAINER_CHUNK = 16 * 1024


def sniff(head: bytes) -> str | None:
    """The container a file starts like, or None (raw PCM)."""
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        return "wav"
    if head[:4] == b"fLaC":
        return "flac"
    if head[:4] == b"OggS":
        return "ogg"
    if head[:4] == b"\x1a\x45\xdf\xa3":
        return "webm"
    if head[:3] == b"ID3" or _mpeg_frame(head):
        return "mp3"
    return None


def _mpeg_frame(head: bytes) -> bool:
    """An MPEG audio frame header: sync, no reserved version/layer, a usable bitrate and sample rate (raw
    μ-law silence is 0xFF bytes, which a bare sync check would take for MP3)."""
    if len(head) < 3 or head[0] != 0xFF or head[1] & 0xE0 != 0xE0:
        return False
    return head[1] & 0x18 != 0x08 and head[1] & 0x06 != 0 and head[2] >> 4 not in (0, 0xF) and head[2] & 0x0C != 0x0C


def wav_rate(head: bytes) -> tuple[int, int, int] | None:
    """(sample_rate, channels, bytes per sample) from a WAV header's fmt chunk, for pacing."""
    i = 12
    while i + 8 <= len(head):
        cid, size = head[i:i + 4], struct.unpack("<I", head[i + 4:i + 8])[0]
        if cid == b"fmt " and i + 24 <= len(head):
            _, ch, rate, _, _, bits = struct.unpack("<HHIIHH", head[i + 8:i + 24])
            return rate, ch, max(1, bits // 8)
        i += 8 + size + (size & 1)
    return None


@dataclass
class PreparedAudio:
    spec: AudioSpec                 # what start.audio declares
    chunks: AsyncIterator[bytes]
    bytes_per_s: float | None       # for real-time pacing; None when unknown (compressed containers)


def prepare(source: AudioSource, declared: AudioSpec | None, chunk_ms: int) -> PreparedAudio:
    """The audio spec to declare and the chunks to send. `declared` (the options' audio, when the caller
    set it) wins over what is recognised."""
    if isinstance(source, str | os.PathLike):
        path = Path(source)
        data = path.read_bytes()
        return _from_bytes(data, declared, chunk_ms, RAW_SUFFIXES.get(path.suffix.lower()))
    if isinstance(source, bytes | bytearray | memoryview):
        return _from_bytes(bytes(source), declared, chunk_ms, None)
    spec = declared or AudioSpec()
    return PreparedAudio(spec, _iterate(source), _pcm_rate(spec))


def _pcm_rate(spec: AudioSpec) -> float | None:
    width = PCM_WIDTH.get(spec.encoding)
    return float(spec.sample_rate * spec.channels * width) if width else None


def _from_bytes(data: bytes, declared: AudioSpec | None, chunk_ms: int, raw_hint: str | None) -> PreparedAudio:
    container = None if raw_hint else sniff(data[:16])  # a raw file's extension beats its first bytes
    if declared is not None:
        spec = declared
    elif container is not None:
        spec = AudioSpec(encoding=container)  # type: ignore[arg-type]
    else:
        encoding = raw_hint or "pcm_s16le"
        hz = 8000 if encoding in ("pcm_mulaw", "pcm_alaw") else 16000  # G.711 is telephony: 8 kHz
        spec = AudioSpec(encoding=encoding, sample_rate=hz)  # type: ignore[arg-type]
    rate = _pcm_rate(spec)
    if rate is None and spec.encoding == "wav":
        fmt = wav_rate(data[:4096])
        rate = float(fmt[0] * fmt[1] * fmt[2]) if fmt else None
    if spec.encoding in PCM_WIDTH:
        step = max(PCM_WIDTH[spec.encoding] * spec.channels, int((rate or 32000) * chunk_ms / 1000))
        step -= step % (PCM_WIDTH[spec.encoding] * spec.channels)
    else:
        step = max(1024, int(rate * chunk_ms / 1000)) if rate else CONTAINER_CHUNK
    return PreparedAudio(spec, _slices(data, step), rate)


async def _slices(data: bytes, step: int) -> AsyncIterator[bytes]:
    for i in range(0, len(data), step):
        yield data[i:i + step]


async def _iterate(source: AsyncIterable[bytes] | Iterable[bytes]) -> AsyncIterator[bytes]:
    if isinstance(source, AsyncIterable):
        async for chunk in source:
            yield bytes(chunk)
    else:
        for chunk in source:
            yield bytes(chunk)


async def paced(chunks: AsyncIterator[bytes], bytes_per_s: float | None, realtime: float | None) -> AsyncIterator[bytes]:
    """The chunks, released no faster than `realtime` x real time (None or 0: as fast as they come)."""
    if not realtime or not bytes_per_s:
        async for c in chunks:
            yield c
        return
    t0 = time.perf_counter()
    sent = 0
    async for c in chunks:
        yield c
        sent += len(c)
        delay = t0 + sent / bytes_per_s / realtime - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
