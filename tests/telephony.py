"""Test-side telephony audio: 8 kHz resampling (sox, independent of the hub's own resampler) and G.711
μ-law / A-law encoders written from the standard's segment tables (the hub only decodes)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np

MULAW_BIAS = 0x84
MULAW_CLIP = 32635


def to_rate(path: Path, rate: int) -> np.ndarray:
    """The file as int16 mono at `rate`, by sox."""
    raw = subprocess.run(["sox", str(path), "-t", "raw", "-r", str(rate), "-c", "1", "-b", "16", "-e", "signed-integer",
                          "-L", "-"], check=True, capture_output=True).stdout
    return np.frombuffer(raw, dtype="<i2")


def _segment(magnitude: np.ndarray, floor: int) -> np.ndarray:
    """Index of the highest set bit above `floor` (0 for magnitudes below 2**(floor+1))."""
    top = np.floor(np.log2(np.maximum(magnitude, 1))).astype(np.int32)
    return np.clip(top - floor, 0, 7)


def mulaw_encode(x: np.ndarray) -> bytes:
    s = x.astype(np.int32)
    sign = np.where(s < 0, 0x80, 0)
    mag = np.minimum(np.abs(s), MULAW_CLIP) + MULAW_BIAS
    exp = _segment(mag, 7)
    mant = (mag >> (exp + 3)) & 0x0F
    return (~(sign | (exp << 4) | mant) & 0xFF).astype(np.uint8).tobytes()


def alaw_encode(x: np.ndarray) -> bytes:
    s = x.astype(np.int32)
    sign = np.where(s >= 0, 0x80, 0)
    mag = np.minimum(np.where(s >= 0, s, -s - 1), 32767)
    exp = np.where(mag < 256, 0, _segment(mag, 7))
    mant = np.where(exp == 0, mag >> 4, mag >> (exp + 3)) & 0x0F
    return (((sign | (exp << 4) | mant) ^ 0x55) & 0xFF).astype(np.uint8).tobytes()
