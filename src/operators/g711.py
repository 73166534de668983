"""G.711 (ITU-T) companded PCM, μ-law (`pcm_mulaw`) and A-law (`pcm_alaw`): one byte per sample.

Decoding is a 256-entry table per law, built once from the standard's segment/mantissa expansion;
the result is float32 in [-1, 1] on the same scale as 16-bit linear PCM (x / 32768).
"""

from __future__ import annotations

import numpy as np

_CODES = np.arange(256, dtype=np.int32)
_MULAW_BIAS = 0x84


def _mulaw_table() -> np.ndarray:
    u = ~_CODES & 0xFF                     # transmitted bytes are inverted
    exponent = (u >> 4) & 0x07
    mantissa = u & 0x0F
    magnitude = (((mantissa << 3) + _MULAW_BIAS) << exponent) - _MULAW_BIAS
    return np.where(u & 0x80, -magnitude, magnitude).astype(np.int16)


def _alaw_table() -> np.ndarray:
    a = _CODES ^ 0x55                      # even bits are inverted on the line
    exponent = (a >> 4) & 0x07
    mantissa = a & 0x0F
    magnitude = np.where(exponent == 0, (mantissa << 4) + 8,
                         ((mantissa << 4) + 0x108) << np.maximum(exponent - 1, 0))
    return np.where(a & 0x80, magnitude, -magnitude).astype(np.int16)  # sign bit set: positive


#: code byte -> 16-bit linear sample
MULAW_TO_INT16 = _mulaw_table()
ALAW_TO_INT16 = _alaw_table()
_FLOAT = {"pcm_mulaw": MULAW_TO_INT16.astype(np.float32) / 32768.0,
          "pcm_alaw": ALAW_TO_INT16.astype(np.float32) / 32768.0}
ENCODINGS = tuple(_FLOAT)


def g711_to_float(data: bytes, encoding: str) -> np.ndarray:
    """G.711 bytes -> float32 samples (one per byte)."""
    return _FLOAT[encoding][np.frombuffer(data, dtype=np.uint8)]
