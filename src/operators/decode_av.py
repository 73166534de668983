"""Incremental decoding of container/compressed audio with PyAV.

How streaming container decoding works (``ContainerDecoder``)
-------------------------------------------------------------
FFmpeg's demuxers *pull* bytes through a read callback and treat a zero-length
read as end of file; that EOF is sticky inside the AVIOContext and a demuxer
interrupted mid-element (webm cluster, ogg page, flac frame) cannot be resumed.
A callback that answers "nothing yet" therefore breaks the stream, and a
"keep N bytes of safety margin" scheme has to guess the largest element size
(an ogg page can be 64 KiB) and adds latency.

So each ``ContainerDecoder`` runs ``av.open`` + demux + decode in one small
*worker thread* whose file-like ``read()`` **blocks** until bytes arrive (or
``close()`` signals the real end of stream). The calls are strictly hand-over:

* ``feed(data)`` appends ``data`` to a bytearray, wakes the worker and waits until
  the worker has consumed every byte and is blocked again in ``read()`` (or has
  finished). It then returns the PCM produced meanwhile. Nothing runs in the
  background between calls, output is deterministic, and the demuxer never sees
  a premature EOF however the stream is sliced (a MediaRecorder webm where only
  the first slice holds the header, 1-byte slices, ...).
* ``close()`` marks EOF, lets the worker flush demuxer and decoder, joins it.
* Memory is bounded: the bytearray only holds bytes the worker has not read yet
  (at most one ``feed``), plus FFmpeg's 32 KiB I/O buffer.
* Never hangs: every wait has a timeout; an abandoned decoder is aborted when it
  is garbage collected (``weakref.finalize``); the worker is a daemon thread.
* Errors (bad header, corrupt stream, no audio stream, no audio after 256 KiB)
  are raised from ``feed``/``close`` as ``HubError(invalid_audio)``.

``OpusPacketDecoder`` needs no demuxer: each message is one Opus packet that goes
straight into a libopus ``CodecContext``. ``decode_file`` decodes a complete file.
"""

from __future__ import annotations

import io
import threading
import weakref

import av
import numpy as np

from ..core.errors import ErrorCode, HubError
from .pcm_block import PcmBlock, concat_blocks
from .wav_stream import WavPcmStream, parse_wav_header

__all__ = [
    "ContainerDecoder",
    "OpusPacketDecoder",
    "PcmBlock",
    "concat_blocks",
    "decode_file",
    "frame_to_block",
]

#: encoding name -> FFmpeg demuxer name
CONTAINER_FORMATS: dict[str, str] = {
    "wav": "wav",
    "flac": "flac",
    "mp3": "mp3",
    "ogg": "ogg",
    "webm": "matroska",
}
OPUS_RATES = (8000, 12000, 16000, 24000, 48000)
MAX_BYTES_WITHOUT_AUDIO = 1 << 20  # a stream that yields no audio in its first MiB is rejected
MAX_BAD_PACKETS = 50  # consecutive undecodable packets before the stream is rejected
WAIT_TIMEOUT_S = 60.0  # longest a feed()/close() waits for the worker


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


def _invalid(message: str, fatal: bool = True) -> HubError:
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
        shared.error = _invalid(f"{fmt} stream ended inside its header (truncated, or not {fmt})")
    except (av.FFmpegError, ValueError, OSError) as exc:
        shared.error = _invalid(f"cannot decode {fmt} stream: {exc}")
    except Exception as exc:  # never let a worker die silently
        shared.error = HubError(ErrorCode.internal, f"decoder failure: {exc!r}")
    finally:
        with shared.cond:
            shared.done = True
            shared.cond.notify_all()


def _demux_decode(shared: _Shared, fmt: str) -> None:
    reader = _BlockingReader(shared)
    with av.open(reader, mode="r", format=fmt, options={"probesize": "32", "analyzeduration": "1"}) as container:
        if not container.streams.audio:
            raise _invalid(f"{fmt} stream has no audio track")
        stream = container.streams.audio[0]
        bad = 0
        for packet in container.demux(stream):
            try:
                frames = packet.decode()
            except av.FFmpegError:
                bad += 1
                if bad > MAX_BAD_PACKETS:
                    raise _invalid(f"too many corrupt packets in {fmt} stream") from None
                continue
            bad = 0
            blocks = [frame_to_block(f) for f in frames if f.samples > 0]
            if blocks:
                with shared.cond:
                    shared.out.extend(blocks)


class _AvStream:
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


class ContainerDecoder:
    """Decode a wav/flac/mp3/ogg/webm byte stream that arrives in arbitrary slices.

    ``feed`` returns the PCM decodable so far, ``close`` flushes the rest. Plain PCM
    WAV is decoded in numpy (``wav_stream``), everything else by a PyAV worker.
    """

    def __init__(self, encoding: str) -> None:
        if encoding not in CONTAINER_FORMATS:
            raise HubError(ErrorCode.unsupported_encoding, f"unsupported container encoding {encoding!r}")
        self.encoding = encoding
        self._head = bytearray()  # wav only: bytes held until the header is parsed
        self._backend: _AvStream | WavPcmStream | None = None
        self._finalizer: weakref.finalize | None = None
        self._closed = False
        self._produced = False
        self._fed = 0

    def feed(self, data: bytes) -> list[PcmBlock]:
        """Add the next slice of the stream; return the PCM decoded so far."""
        if self._closed:
            raise HubError(ErrorCode.invalid_command, "decoder already closed")
        if not data:
            return []
        self._fed += len(data)
        try:
            if self._backend is None:
                blocks = self._note(self._start(bytes(data)))
            else:
                blocks = self._note(self._backend.feed(bytes(data)))
            if not self._produced and self._fed > MAX_BYTES_WITHOUT_AUDIO:
                raise _invalid(f"no audio decoded from the first {self._fed} bytes of the {self.encoding} stream")
            return blocks
        except HubError as exc:
            exc.fatal = True  # a container stream cannot resynchronise
            self.abort()
            raise

    def close(self) -> list[PcmBlock]:
        """End of stream: flush the demuxer/decoder and return the remaining PCM."""
        if self._closed:
            return []
        self._closed = True
        if self._backend is None:
            raise _invalid(f"{self.encoding} stream ended before its header was complete")
        blocks = self._note(self._backend.close())
        if not self._produced:
            raise _invalid(f"no audio decoded from {self.encoding} stream (truncated or not {self.encoding})")
        return blocks

    def abort(self) -> None:
        """Stop at once without flushing (e.g. the client went away)."""
        self._closed = True
        if isinstance(self._backend, _AvStream):
            self._backend.shared.abort()

    def _start(self, data: bytes) -> list[PcmBlock]:
        if self.encoding == "wav":
            self._head += data
            fmt = parse_wav_header(self._head)
            if fmt is None:
                return []
            head, self._head = bytes(self._head), bytearray()
            if fmt.supported:
                self._backend = WavPcmStream(fmt)
                return self._backend.feed(head[fmt.data_offset :])
            data = head  # compressed WAV (mu-law, ADPCM, ...): let FFmpeg decode it
        backend = _AvStream(CONTAINER_FORMATS[self.encoding])
        self._backend = backend
        self._finalizer = weakref.finalize(self, backend.shared.abort)
        return backend.feed(data)

    def _note(self, blocks: list[PcmBlock]) -> list[PcmBlock]:
        if blocks:
            self._produced = True
        return blocks


class OpusPacketDecoder:
    """Decode raw Opus packets (one packet per message, no container)."""

    def __init__(self, sample_rate: int, channels: int) -> None:
        if sample_rate not in OPUS_RATES:
            raise HubError(ErrorCode.unsupported_encoding, f"opus sample rate must be one of {OPUS_RATES}")
        if channels not in (1, 2):
            raise HubError(ErrorCode.unsupported_encoding, "opus channels must be 1 or 2")
        self.sample_rate = sample_rate
        self.channels = channels
        self._codec = av.CodecContext.create("libopus", "r")
        self._codec.sample_rate = sample_rate
        self._codec.layout = "mono" if channels == 1 else "stereo"

    def feed(self, packet: bytes) -> list[PcmBlock]:
        if not packet:
            return []
        try:
            frames = self._codec.decode(av.Packet(packet))
        except av.FFmpegError as exc:
            raise _invalid(f"bad opus packet ({len(packet)} bytes): {exc}", fatal=False) from None
        return [frame_to_block(f) for f in frames if f.samples > 0]

    def close(self) -> list[PcmBlock]:
        """Opus packets decode independently: nothing is held back."""
        return []


def decode_file(data: bytes) -> PcmBlock:
    """Decode a complete audio file of any format FFmpeg knows into one block."""
    if not data:
        raise _invalid("empty audio file")
    blocks: list[PcmBlock] = []
    try:
        with av.open(io.BytesIO(data), mode="r") as container:
            if not container.streams.audio:
                raise _invalid("file has no audio track")
            stream = container.streams.audio[0]
            for packet in container.demux(stream):
                try:
                    frames = packet.decode()
                except av.FFmpegError:
                    continue
                blocks.extend(frame_to_block(f) for f in frames if f.samples > 0)
    except av.FFmpegError as exc:
        raise _invalid(f"cannot decode audio file: {exc}") from None
    if not blocks:
        raise _invalid("no audio decoded from file")
    return concat_blocks(blocks)
