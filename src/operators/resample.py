"""Downmix and streaming-safe resampling to the hub rate (soxr keeps filter state across chunks)."""

from __future__ import annotations

import numpy as np
import soxr

from ..core.audio import HUB_RATE


def downmix(frames: np.ndarray) -> np.ndarray:
    """(n, channels) float32 -> (n,) mono."""
    if frames.ndim == 1:
        return frames
    if frames.shape[1] == 1:
        return frames[:, 0]
    return frames.mean(axis=1, dtype=np.float32)


class Resampler:
    def __init__(self, in_rate: int, out_rate: int = HUB_RATE) -> None:
        self.in_rate = in_rate
        self.out_rate = out_rate
        self._stream = None if in_rate == out_rate else soxr.ResampleStream(
            in_rate, out_rate, 1, dtype="float32", quality="HQ")

    def process(self, mono: np.ndarray, last: bool = False) -> np.ndarray:
        if self._stream is None:
            return mono.astype(np.float32, copy=False)
        return self._stream.resample_chunk(np.ascontiguousarray(mono, dtype=np.float32), last=last)
