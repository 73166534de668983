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
*worker thread* (``av_stream.AvStream``) whose file-like ``read()`` **blocks**
until bytes arrive (or ``close()`` signals the real end of stream). The calls
are strictly hand-over:

* ``feed(data)`` appends ``data`` to a bytearray, wakes the worker and waits until
  the worker has consumed every byte and is blocked again in ``read()`` (or has
  finished). It then returns the PCM produced meanwhile. Nothing runs in the
  background between calls, output is deterministic, and the demuxer never sees
  a premature EOF however the stream is sliced (a MediaRecorder webm where only
  the first slice holds the header, 1-byte slices, ...). Output latency is only
  the container's own granularity (webm/Opus: one block, ~20 ms; ogg: one page;
  flac: the FFmpeg parser holds a few frames); the open uses a tiny probesize.
* ``close()`` marks EOF, lets the worker flush demuxer and decoder, joins it.
* Memory is bounded: the bytearray only holds bytes the worker has not read yet
  (at most one ``feed``), plus FFmpeg's 32 KiB I/O buffer.
* Never hangs: every wait has a timeout; an abandoned decoder is aborted when it
  is garbage collected (``weakref.finalize``); the worker is a daemon thread.
* Errors (bad header, corrupt stream, no audio track, no audio in the first MiB,
  header-only stream at close) are raised from ``feed``/``close`` as a fatal
  ``HubError(invalid_audio)``; the decoder is then closed.

Plain PCM/float WAV skips FFmpeg (its wav demuxer reads 64 KiB ahead, 2 s at
16 kHz): ``wav_stream`` parses the header and converts samples with numpy.

``OpusPacketDecoder`` needs no demuxer: each message is one Opus packet that goes
straight into a libopus ``CodecContext`` (output is always 48 kHz: FFmpeg's Opus
decoders do not decode at lower rates). ``decode_file`` decodes a complete file.
"""

from __future__ import annotations

import io
import weakref

import av

from ..core.errors import ErrorCode, HubError
from .av_stream import AvStream, frame_to_block, invalid_audio
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
        self._backend: AvStream | WavPcmStream | None = None
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
                raise invalid_audio(
                    f"no audio decoded from the first {self._fed} bytes of the {self.encoding} stream"
                )
            return blocks
        except HubError as exc:
            self.abort()
            raise exc.as_fatal() from None  # a container stream cannot resynchronise

    def close(self) -> list[PcmBlock]:
        """End of stream: flush the demuxer/decoder and return the remaining PCM."""
        if self._closed:
            return []
        self._closed = True
        if self._backend is None:
            raise invalid_audio(f"{self.encoding} stream ended before its header was complete")
        blocks = self._note(self._backend.close())
        if not self._produced:
            raise invalid_audio(
                f"no audio decoded from {self.encoding} stream (truncated or not {self.encoding})"
            )
        return blocks

    def abort(self) -> None:
        """Stop at once without flushing (e.g. the client went away)."""
        self._closed = True
        if isinstance(self._backend, AvStream):
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
        backend = AvStream(CONTAINER_FORMATS[self.encoding])
        self._backend = backend
        self._finalizer = weakref.finalize(self, backend.shared.abort)
        return backend.feed(data)

    def _note(self, blocks: list[PcmBlock]) -> list[PcmBlock]:
        if blocks:
            self._produced = True
        return blocks


class OpusPacketDecoder:
    """Decode raw Opus packets (one packet per message, no container).

    ``input_rate`` is the rate the client encoded at (validated only: an Opus packet
    decodes at any rate); ``sample_rate`` is the rate of the blocks returned, 48 kHz.
    """

    def __init__(self, sample_rate: int, channels: int) -> None:
        if sample_rate not in OPUS_RATES:
            raise HubError(ErrorCode.unsupported_encoding, f"opus sample rate must be one of {OPUS_RATES}")
        if channels not in (1, 2):
            raise HubError(ErrorCode.unsupported_encoding, "opus channels must be 1 or 2")
        self.input_rate = sample_rate
        self.sample_rate = 48000
        self.channels = channels
        self._codec = av.CodecContext.create("libopus", "r")
        self._codec.layout = "mono" if channels == 1 else "stereo"

    def feed(self, packet: bytes) -> list[PcmBlock]:
        if not packet:
            return []
        try:
            frames = self._codec.decode(av.Packet(packet))
        except av.FFmpegError as exc:
            raise invalid_audio(f"bad opus packet ({len(packet)} bytes): {exc}", fatal=False) from None
        return [frame_to_block(f) for f in frames if f.samples > 0]

    def close(self) -> list[PcmBlock]:
        """Opus packets decode independently: nothing is held back."""
        return []


def decode_file(data: bytes) -> PcmBlock:
    """Decode a complete audio file of any format FFmpeg knows into one block."""
    if not data:
        raise invalid_audio("empty audio file")
    blocks: list[PcmBlock] = []
    try:
        with av.open(io.BytesIO(data), mode="r") as container:
            if not container.streams.audio:
                raise invalid_audio("file has no audio track")
            stream = container.streams.audio[0]
            for packet in container.demux(stream):
                try:
                    frames = packet.decode()
                except av.FFmpegError:
                    continue
                blocks.extend(frame_to_block(f) for f in frames if f.samples > 0)
    except av.FFmpegError as exc:  # FFmpeg's own words ("Invalid data found when processing input"), not its errno
        reason = getattr(exc, "strerror", None) or str(exc)
        raise invalid_audio(f"cannot decode audio file: {reason} (not an audio format FFmpeg reads)") from None
    if not blocks:
        raise invalid_audio("no audio decoded from file")
    return concat_blocks(blocks)
