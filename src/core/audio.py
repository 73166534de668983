"""Audio types shared by the pipeline and the providers."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Literal

import numpy as np

HUB_RATE = 16000

Encoding = Literal["pcm_s16le", "pcm_f32le", "pcm_mulaw", "pcm_alaw", "wav", "flac", "mp3", "ogg", "webm", "opus"]
PCM_ENCODINGS = ("pcm_s16le", "pcm_f32le", "pcm_mulaw", "pcm_alaw")  # raw samples: the client's rate is the rate
CONTAINER_ENCODINGS = ("wav", "flac", "mp3", "ogg", "webm")


@dataclass(frozen=True, slots=True)
class AudioChunk:
    """int16 mono samples at the hub rate; `offset` is the index of samples[0] in the session timeline."""

    samples: np.ndarray
    offset: int

    @property
    def end(self) -> int:
        return self.offset + len(self.samples)


def samples_to_ms(n: int, rate: int = HUB_RATE) -> int:
    return int(round(n * 1000 / rate))


def ms_to_samples(ms: float, rate: int = HUB_RATE) -> int:
    return int(round(ms * rate / 1000))


def float_to_int16(x: np.ndarray) -> np.ndarray:
    """Inverse of int16_to_float: int16 input that went through float comes back unchanged."""
    return np.clip(np.rint(x * 32768.0), -32768, 32767).astype(np.int16)


def int16_to_float(x: np.ndarray) -> np.ndarray:
    return x.astype(np.float32) / 32768.0


class RingBuffer:
    """A session's recent normalised audio, addressable by absolute sample offset.

    Held as a deque of chunks so memory follows what is needed: the session trims it to the open
    utterance (for re-decoding and failover replay) or to a short pre-roll while nobody speaks.
    `capacity` bounds it whatever happens (limits.max_session_buffer_s).
    """

    def __init__(self, capacity: int) -> None:
        self._chunks: deque[tuple[int, np.ndarray]] = deque()
        self.capacity = capacity
        self.start = 0
        self.end = 0  # absolute offset one past the newest sample

    def append(self, samples: np.ndarray) -> None:
        if len(samples) == 0:
            return
        self._chunks.append((self.end, samples))
        self.end += len(samples)
        self.trim(self.end - self.capacity)

    def trim(self, before: int) -> None:
        """Forget whole chunks that end at or before `before`."""
        while self._chunks and self._chunks[0][0] + len(self._chunks[0][1]) <= before:
            self._chunks.popleft()
        self.start = self._chunks[0][0] if self._chunks else self.end

    @property
    def held(self) -> int:
        return self.end - self.start

    def read(self, start: int, stop: int | None = None) -> np.ndarray:
        """Samples in [start, stop) clipped to what is still held."""
        stop = self.end if stop is None else min(stop, self.end)
        start = max(start, self.start)
        if stop <= start:
            return np.zeros(0, dtype=np.int16)
        parts = []
        for off, s in self._chunks:
            e = off + len(s)
            if e <= start:
                continue
            if off >= stop:
                break
            parts.append(s[max(0, start - off):min(len(s), stop - off)])
        return np.concatenate(parts) if len(parts) > 1 else parts[0].copy()
