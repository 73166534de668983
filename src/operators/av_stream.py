"""A PyAV demux+decode loop run in a worker thread, fed through a blocking file-like.

See ``decode_av`` for why: FFmpeg demuxers pull bytes and treat an empty read as a
sticky EOF, so the reader must *block* until bytes (or the real end) arrive. The
caller and the worker hand over strictly: ``AvStream.feed`` returns only once the
worker has consumed every byte and waits in ``read()`` again (or has finished).
"""

from __future__ import annotations

import io
import threading

import av
import numpy as np

from ..core.errors import ErrorCode, HubError
from .pcm_block import PcmBlock

MAX_BAD_PACKETS = 50  # consecutive undecodable packets before the stream is rejected
WAIT_TIMEOUT_S = 60.0  # longest a feed()/close() waits for the worker
#: tiny probe: audio parameters come from the container header / first packet, and a
#: large probesize/analyzeduration would hold back the first output (mp3: ~2 s)
OPEN_OPTIONS = {"probesize": "32", "analyzeduration": "1"}


def frame_to_block(frame: av.AudioFrame) -> PcmBlock:
    """Convert any PyAV audio frame (planar or packed, int or float) to a PcmBlock."""
    channels = frame.layout.nb_channels
    arr = frame.to_ndarray()
    if frame.format.is_planar:
        arr = arr.T
    else:
        arr = arr.reshape(-1, channels)
    if arr.dtype == np.int16:
        out = arr.astype(np.float32) / 32768.0
    elif arr.dtype == np.int32:
        out = (arr.astype(np.float64) / 2147483648.0).astype(np.float32)
    elif arr.dtype == np.uint8:
        out = (arr.astype(np.float32) - 128.0) / 128.0
    else:
        out = arr.astype(np.float32)
    return PcmBlock(np.ascontiguousarray(out), int(frame.sample_rate))


def invalid_audio(message: str, fatal: bool = True) -> HubError:
    return HubError(ErrorCode.invalid_audio, message, fatal=fatal)


class _Abort(Exception):
    """Raised inside the worker's read() to unwind the demuxer on abort."""


class _Shared:
    """State shared by the caller and the worker thread (guarded by ``cond``)."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.buf = bytearray()
        self.eof = False
        self.aborted = False
        self.waiting = False  # worker is blocked in read() with an empty buffer
        self.done = False
        self.error: HubError | None = None
        self.out: list[PcmBlock] = []
        self.bytes_read = 0

    def abort(self) -> None:
        with self.cond:
            self.aborted = True
            self.cond.notify_all()


class _BlockingReader(io.RawIOBase):
    """Non-seekable file-like whose read() blocks until data, EOF or abort."""

    def __init__(self, shared: _Shared) -> None:
        super().__init__()
        self.shared = shared

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        s = self.shared
        with s.cond:
            while not s.buf and not s.eof and not s.aborted:
                s.waiting = True
                s.cond.notify_all()
                s.cond.wait()
            s.waiting = False
            if s.aborted:
                raise _Abort()
            n = len(s.buf) if size is None or size < 0 else min(size, len(s.buf))
            data = bytes(s.buf[:n])
            del s.buf[:n]
            s.bytes_read += n
            return data


def _run_worker(shared: _Shared, fmt: str) -> None:
    try:
        _demux_decode(shared, fmt)
    except _Abort:
        pass
    except HubError as exc:
        shared.error = exc
    except EOFError:
        shared.error = invalid_audio(f"{fmt} stream ended inside its header (truncated, or not {fmt})")
    except (av.FFmpegError, ValueError, OSError) as exc:
        shared.error = invalid_audio(f"cannot decode {fmt} stream: {exc}")
    except Exception as exc:  # never let a worker die silently
        shared.error = HubError(ErrorCode.internal, f"decoder failure: {exc!r}")
    finally:
        with shared.cond:
            shared.done = True
            shared.cond.notify_all()


def _demux_decode(shared: _Shared, fmt: str) -> None:
    reader = _BlockingReader(shared)
    with av.open(reader, mode="r", format=fmt, options=OPEN_OPTIONS) as container:
        if not container.streams.audio:
            raise invalid_audio(f"{fmt} stream has no audio track")
        stream = container.streams.audio[0]
        bad = 0
        for packet in container.demux(stream):
            try:
                frames = packet.decode()
            except av.FFmpegError:
                bad += 1
                if bad > MAX_BAD_PACKETS:
                    raise invalid_audio(f"too many corrupt packets in {fmt} stream") from None
                continue
            bad = 0
            blocks = [frame_to_block(f) for f in frames if f.samples > 0]
            if blocks:
                with shared.cond:
                    shared.out.extend(blocks)


class AvStream:
    """One PyAV demux+decode worker thread fed through a blocking reader."""

    def __init__(self, fmt: str) -> None:
        self.fmt = fmt
        self.shared = _Shared()
        self.thread = threading.Thread(
            target=_run_worker, args=(self.shared, fmt), name=f"decode-{fmt}", daemon=True
        )
        self.thread.start()

    def feed(self, data: bytes) -> list[PcmBlock]:
        s = self.shared
        with s.cond:
            if not s.done:
                s.buf += data
                s.cond.notify_all()
                ok = s.cond.wait_for(lambda: s.done or (s.waiting and not s.buf), WAIT_TIMEOUT_S)
                if not ok:
                    s.aborted = True
                    s.cond.notify_all()
                    raise HubError(ErrorCode.internal, f"{self.fmt} decoder stalled", fatal=True)
        return self.collect()

    def close(self) -> list[PcmBlock]:
        s = self.shared
        with s.cond:
            s.eof = True
            s.cond.notify_all()
        self.thread.join(WAIT_TIMEOUT_S)
        if self.thread.is_alive():
            s.abort()
            raise HubError(ErrorCode.internal, f"{self.fmt} decoder did not finish", fatal=True)
        return self.collect()

    def collect(self) -> list[PcmBlock]:
        s = self.shared
        with s.cond:
            blocks, s.out = s.out, []
            error, s.error = s.error, None
        if error is not None:
            raise error
        return blocks
