"""Streaming WAV (RIFF/RF64) header parser and PCM decoder in plain numpy.

FFmpeg's wav demuxer reads 64 KiB ahead before the first packet (S/PDIF probe),
which is 2 s of latency for 16 kHz mono. Plain PCM/float WAV needs no codec, so
it is decoded here sample-exactly as bytes arrive; other WAV codecs (mu-law,
ADPCM, ...) are left to PyAV by the caller (``WavFormat.supported`` is False).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np

from ..core.errors import ErrorCode, HubError
from .pcm_block import PcmBlock

MAX_HEADER_BYTES = 1 << 20
_PCM, _FLOAT, _EXTENSIBLE = 1, 3, 0xFFFE
_UNKNOWN_SIZES = (0, 0xFFFFFFFF)


@dataclass(frozen=True)
class WavFormat:
    format_tag: int
    channels: int
    sample_rate: int
    bits: int
    block_align: int
    data_offset: int  # byte offset of the first sample
    data_size: int | None  # None: unknown (streaming writer), read to end of stream

    @property
    def supported(self) -> bool:
        """True when decoded here (integer PCM 8/16/24/32 bit or float 32/64 bit)."""
        if self.format_tag == _PCM:
            return self.bits in (8, 16, 24, 32)
        if self.format_tag == _FLOAT:
            return self.bits in (32, 64)
        return False


def _bad(message: str) -> HubError:
    return HubError(ErrorCode.invalid_audio, f"invalid WAV: {message}")


def parse_wav_header(buf: bytes | bytearray) -> WavFormat | None:
    """Parse the header at the start of ``buf``; None means more bytes are needed."""
    if len(buf) >= 4 and bytes(buf[:4]) not in (b"RIFF", b"RF64"):
        raise _bad("does not start with RIFF")
    if len(buf) < 12:
        return None
    if bytes(buf[8:12]) != b"WAVE":
        raise _bad("RIFF type is not WAVE")
    pos = 12
    fmt: tuple[int, int, int, int, int] | None = None
    rf64_data_size: int | None = None
    while True:
        if pos + 8 > len(buf):
            if pos > MAX_HEADER_BYTES:
                raise _bad("no data chunk in the first 1 MiB")
            return None
        chunk_id = bytes(buf[pos : pos + 4])
        (size,) = struct.unpack_from("<I", buf, pos + 4)
        body = pos + 8
        if chunk_id == b"data":
            if fmt is None:
                raise _bad("data chunk before fmt chunk")
            data_size: int | None = rf64_data_size if rf64_data_size is not None else size
            if data_size in _UNKNOWN_SIZES:
                data_size = None
            tag, channels, rate, block_align, bits = fmt
            return WavFormat(tag, channels, rate, bits, block_align, body, data_size)
        if body + size > len(buf):
            if body + size > MAX_HEADER_BYTES:
                raise _bad(f"header chunk {chunk_id!r} too large ({size} bytes)")
            return None
        if chunk_id == b"fmt ":
            if size < 16:
                raise _bad("fmt chunk too short")
            tag, channels, rate, _, block_align, bits = struct.unpack_from("<HHIIHH", buf, body)
            if tag == _EXTENSIBLE and size >= 40:
                (tag,) = struct.unpack_from("<H", buf, body + 24)  # first 2 bytes of SubFormat GUID
            if channels == 0 or rate == 0 or block_align == 0:
                raise _bad(f"channels={channels} rate={rate} block_align={block_align}")
            fmt = (tag, channels, rate, block_align, bits)
        elif chunk_id == b"ds64" and size >= 16:
            (rf64_data_size,) = struct.unpack_from("<Q", buf, body + 8)
        pos = body + size + (size & 1)


def pcm_bytes_to_float(data: bytes, fmt: WavFormat) -> np.ndarray:
    """Convert whole sample frames of WAV PCM bytes to float32 (n, channels)."""
    width = fmt.block_align // fmt.channels
    if fmt.format_tag == _FLOAT:
        arr = np.frombuffer(data, dtype="<f4" if fmt.bits == 32 else "<f8").astype(np.float32)
    elif width == 1:
        arr = (np.frombuffer(data, dtype=np.uint8).astype(np.float32) - 128.0) / 128.0
    elif width == 2:
        arr = np.frombuffer(data, dtype="<i2").astype(np.float32) / 32768.0
    elif width == 3:
        raw = np.frombuffer(data, dtype=np.uint8).reshape(-1, 3).astype(np.int32)
        val = raw[:, 0] | (raw[:, 1] << 8) | (raw[:, 2] << 16)
        val = np.where(val >= 1 << 23, val - (1 << 24), val)
        arr = val.astype(np.float32) / float(1 << 23)
    elif width == 4:
        arr = (np.frombuffer(data, dtype="<i4").astype(np.float64) / 2147483648.0).astype(np.float32)
    else:
        raise _bad(f"unsupported sample width {width} bytes")
    return arr.reshape(-1, fmt.channels)


class WavPcmStream:
    """Decode the sample data that follows a parsed header, in arbitrary slices."""

    def __init__(self, fmt: WavFormat) -> None:
        if not fmt.supported:
            raise _bad(f"format tag {fmt.format_tag} with {fmt.bits} bits is not plain PCM")
        self.fmt = fmt
        self._rest = b""
        self._remaining = fmt.data_size

    def feed(self, data: bytes) -> list[PcmBlock]:
        if self._remaining is not None:
            data = data[: self._remaining]
            self._remaining -= len(data)
        data = self._rest + data
        usable = len(data) - len(data) % self.fmt.block_align
        self._rest = data[usable:]
        if usable == 0:
            return []
        return [PcmBlock(pcm_bytes_to_float(data[:usable], self.fmt), self.fmt.sample_rate)]

    def close(self) -> list[PcmBlock]:
        self._rest = b""  # a trailing partial sample frame is dropped
        return []
