"""Decoders: bytes as the client sends them -> float32 frames (n, channels) at the source rate."""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np

from ..core.audio import PCM_ENCODINGS
from ..core.errors import ErrorCode, HubError
from .g711 import g711_to_float


class Decoder(Protocol):
    sample_rate: int
    channels: int

    def feed(self, data: bytes) -> np.ndarray: ...

    def close(self) -> np.ndarray: ...


class PcmDecoder:
    """Raw PCM (little-endian s16/f32, or G.711 μ-law/A-law bytes); each message must hold whole frames
    (all channels of a sample)."""

    _DTYPES: dict[str, np.dtype[Any]] = {"pcm_s16le": np.dtype("<i2"), "pcm_f32le": np.dtype("<f4"), "pcm_mulaw": np.dtype("u1"),
               "pcm_alaw": np.dtype("u1")}

    def __init__(self, encoding: str, sample_rate: int, channels: int) -> None:
        self.encoding = encoding
        self.sample_rate = sample_rate
        self.channels = channels
        self._dtype: np.dtype[Any] = self._DTYPES[encoding]
        self._frame_bytes = self._dtype.itemsize * channels

    def feed(self, data: bytes) -> np.ndarray:
        if len(data) % self._frame_bytes:
            raise HubError(ErrorCode.invalid_audio,
                           f"{self.encoding} audio with {self.channels} channel(s) comes in {self._frame_bytes}-byte "
                           f"frames; got a message of {len(data)} bytes")
        if self._dtype.kind == "u":
            return g711_to_float(data, self.encoding).reshape(-1, self.channels)
        x = np.frombuffer(data, dtype=self._dtype).reshape(-1, self.channels)
        if self._dtype.kind == "i":
            return x.astype(np.float32) / 32768.0
        x = x.astype(np.float32)
        if not np.all(np.isfinite(x)):
            raise HubError(ErrorCode.invalid_audio, "pcm_f32le audio contains NaN or infinite samples")
        return np.clip(x, -1.0, 1.0)

    def close(self) -> np.ndarray:
        return np.zeros((0, self.channels), dtype=np.float32)


class BlockDecoder:
    """Containers (wav/flac/mp3/ogg/webm, any slicing) and raw Opus packets, via PyAV.

    The rate and channel count are the stream's own, known once it has been decoded; they are
    updated after each feed (the pipeline resamples from whatever comes out)."""

    def __init__(self, encoding: str, sample_rate: int, channels: int) -> None:
        from .decode_av import ContainerDecoder, OpusPacketDecoder

        self.inner: ContainerDecoder | OpusPacketDecoder = (
            OpusPacketDecoder(sample_rate, channels) if encoding == "opus" else ContainerDecoder(encoding))
        self.sample_rate = 48000 if encoding == "opus" else sample_rate
        self.channels = channels

    def _join(self, blocks: list[Any]) -> np.ndarray:
        if not blocks:
            return np.zeros((0, self.channels), dtype=np.float32)
        from .pcm_block import concat_blocks

        block = concat_blocks(blocks)
        self.sample_rate, self.channels = block.sample_rate, block.channels
        return block.samples

    def feed(self, data: bytes) -> np.ndarray:
        return self._join(self.inner.feed(data))

    def close(self) -> np.ndarray:
        return self._join(self.inner.close())


def make_decoder(encoding: str, sample_rate: int, channels: int) -> Decoder:
    if encoding in PCM_ENCODINGS:
        return PcmDecoder(encoding, sample_rate, channels)
    if encoding in ("wav", "flac", "mp3", "ogg", "webm", "opus"):
        return BlockDecoder(encoding, sample_rate, channels)
    raise HubError(ErrorCode.unsupported_encoding, f"encoding '{encoding}' is not supported by this hub")
