"""Shared helpers for operator tests and benchmarks: real speech, PyAV encoding."""

from __future__ import annotations

import io
from fractions import Fraction
from pathlib import Path
from typing import cast

import av
import numpy as np
from av.audio.stream import AudioStream

from tests.support import SPEECH

#: name -> (container format, codec, codec sample rate or None for the source rate)
ENCODINGS: dict[str, tuple[str, str, int | None]] = {
    "webm": ("webm", "libopus", 48000),
    "ogg": ("ogg", "libopus", 48000),
    "mp3": ("mp3", "libmp3lame", None),
    "flac": ("flac", "flac", None),
    "wav": ("wav", "pcm_s16le", None),
}


def read_audio(name: str, root: Path = SPEECH) -> tuple[np.ndarray, int]:
    """Decode a manifest file to float32 (n, channels) with plain PyAV."""
    blocks = []
    with av.open(str(root / name)) as c:
        stream = c.streams.audio[0]
        rate = stream.codec_context.sample_rate
        resampler = av.AudioResampler(format="flt", layout=stream.codec_context.layout, rate=rate)
        for frame in c.decode(stream):
            for f in resampler.resample(frame):
                blocks.append(f.to_ndarray().reshape(-1, f.layout.nb_channels))
    return np.concatenate(blocks).astype(np.float32), rate


def encode(
    samples: np.ndarray, rate: int, encoding: str, bit_rate: int = 32000, codec: str | None = None
) -> bytes:
    """Encode float32 (n, ch) audio into a complete file of the given encoding (codec override optional)."""
    fmt, default_codec, codec_rate = ENCODINGS[encoding]
    codec = codec or default_codec
    channels = samples.shape[1]
    layout = "mono" if channels == 1 else "stereo"
    out = io.BytesIO()
    with av.open(out, "w", format=fmt) as container:
        stream = cast(AudioStream, container.add_stream(codec, rate=codec_rate or rate, layout=layout))
        if codec in ("libopus", "libmp3lame"):
            stream.bit_rate = bit_rate * channels
        if codec == "vorbis":  # FFmpeg's own Vorbis encoder: experimental, stereo only
            stream.codec_context.options = {"strict": "experimental"}
        resampler = av.AudioResampler(
            format=stream.codec_context.format, layout=layout, rate=stream.codec_context.sample_rate
        )
        step = 4096
        for start in range(0, len(samples), step):
            chunk = np.ascontiguousarray(samples[start : start + step].reshape(1, -1))
            frame = av.AudioFrame.from_ndarray(chunk, format="flt", layout=layout)
            frame.sample_rate = rate
            frame.pts = start
            frame.time_base = Fraction(1, rate)
            for f in resampler.resample(frame):
                container.mux(stream.encode(f))
        for f in resampler.resample(None):
            container.mux(stream.encode(f))
        container.mux(stream.encode(None))
    return out.getvalue()


def random_slices(data: bytes, rng: np.random.Generator, lo: int = 200, hi: int = 4000) -> list[bytes]:
    out = []
    pos = 0
    while pos < len(data):
        n = int(rng.integers(lo, hi + 1))
        out.append(data[pos : pos + n])
        pos += n
    return out


def to_mono16k(samples: np.ndarray, rate: int) -> np.ndarray:
    import soxr

    mono = samples.mean(axis=1) if samples.ndim == 2 else samples
    return soxr.resample(mono.astype(np.float32), rate, 16000) if rate != 16000 else mono


def envelope_corr(a: np.ndarray, b: np.ndarray, hop: int = 160) -> float:
    """Correlation of 10 ms RMS envelopes (in dB) of two mono 16 kHz signals."""
    n = min(len(a), len(b)) // hop
    ea = np.sqrt(np.mean(a[: n * hop].reshape(n, hop) ** 2, axis=1) + 1e-10)
    eb = np.sqrt(np.mean(b[: n * hop].reshape(n, hop) ** 2, axis=1) + 1e-10)
    return float(np.corrcoef(20 * np.log10(ea), 20 * np.log10(eb))[0, 1])


def _vint(data: bytes, pos: int, keep_marker: bool) -> tuple[int, int]:
    first = data[pos]
    length = 1
    while length <= 8 and not first & (0x80 >> (length - 1)):
        length += 1
    value = first if keep_marker else first & (0xFF >> length)
    for b in data[pos + 1 : pos + length]:
        value = (value << 8) | b
    return value, pos + length


_UNKNOWN_SIZE = b"\x01\xff\xff\xff\xff\xff\xff\xff"
_SEGMENT, _CLUSTER = 0x18538067, 0x1F43B675
_DROP = {0x114D9B74, 0x1C53BB6B, 0xEC}  # SeekHead, Cues, Void


def as_live_webm(data: bytes) -> bytes:
    """Rewrite a WebM file the way a browser MediaRecorder writes it: Segment and
    Clusters of unknown size, no SeekHead/Cues (so nothing points back into the file)."""
    out = bytearray()
    pos = 0
    while pos < len(data):
        eid, p = _vint(data, pos, True)
        size, body = _vint(data, p, False)
        if eid != _SEGMENT:
            out += data[pos : body + size]
            pos = body + size
            continue
        out += data[pos:p] + _UNKNOWN_SIZE
        end = min(len(data), body + size)
        pos = body
        while pos < end:
            cid, p = _vint(data, pos, True)
            csize, cbody = _vint(data, p, False)
            if cid == _CLUSTER:
                out += data[pos:p] + _UNKNOWN_SIZE + data[cbody : cbody + csize]
            elif cid not in _DROP:
                out += data[pos : cbody + csize]
            pos = cbody + csize
    return bytes(out)
