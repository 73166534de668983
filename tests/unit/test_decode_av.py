"""Streaming container/codec decoding with PyAV, on real speech encoded in the test."""

from __future__ import annotations

import gc
import struct
import threading
import time
from fractions import Fraction

import av
import numpy as np
import pytest

from asrhub.core.errors import ErrorCode, HubError
from asrhub.operators.decode_av import ContainerDecoder, OpusPacketDecoder, PcmBlock, decode_file
from asrhub.operators.pcm_block import concat_blocks
from tests.unit.audio_helpers import (
    ENCODINGS,
    as_live_webm,
    encode,
    envelope_corr,
    random_slices,
    read_audio,
    to_mono16k,
)

SPEECH = "en_libri_1089-134691-0001.flac"  # 5.415 s, 16 kHz mono
STEREO = "en_jfk.flac"  # 11 s, 44.1 kHz stereo


@pytest.fixture(scope="module")
def speech() -> tuple[np.ndarray, int]:
    return read_audio(SPEECH)


@pytest.fixture(scope="module")
def stereo() -> tuple[np.ndarray, int]:
    return read_audio(STEREO)


def stream_decode(encoding: str, data: bytes, seed: int = 0) -> tuple[PcmBlock, float]:
    """Feed random 200-4000 byte slices; return all audio and the seconds decoded before close()."""
    decoder = ContainerDecoder(encoding)
    blocks: list[PcmBlock] = []
    for piece in random_slices(data, np.random.default_rng(seed)):
        blocks += decoder.feed(piece)
    before_close = sum(b.seconds for b in blocks)
    blocks += decoder.close()
    return concat_blocks(blocks), before_close


def check_same_audio(out: PcmBlock, ref: np.ndarray, ref_rate: int) -> None:
    assert abs(out.seconds - len(ref) / ref_rate) <= 0.1
    assert out.samples.dtype == np.float32 and out.samples.shape[1] == ref.shape[1]
    corr = envelope_corr(to_mono16k(out.samples, out.sample_rate), to_mono16k(ref, ref_rate))
    assert corr > 0.9, corr


@pytest.mark.parametrize("encoding", list(ENCODINGS))
def test_sliced_stream_decodes_incrementally(encoding: str, speech) -> None:
    x, rate = speech
    out, before_close = stream_decode(encoding, encode(x, rate, encoding))
    check_same_audio(out, x, rate)
    assert before_close >= out.seconds - 1.5  # decoded as data arrived, not only at close


@pytest.mark.parametrize("encoding", ["webm", "flac", "mp3"])
def test_stereo_44k(encoding: str, stereo) -> None:
    x, rate = stereo
    out, _ = stream_decode(encoding, encode(x, rate, encoding), seed=1)
    assert out.channels == 2
    check_same_audio(out, x, rate)


def test_mediarecorder_style_webm(speech) -> None:
    """Unknown-size Segment/Clusters, no Cues; only the first slice holds the header."""
    x, rate = speech
    live = as_live_webm(encode(x, rate, "webm"))
    decoder = ContainerDecoder("webm")
    blocks: list[PcmBlock] = []
    fed = 0
    for piece in random_slices(live, np.random.default_rng(2)):
        blocks += decoder.feed(piece)
        fed += len(piece)
        # latency: audio out keeps up with bytes in (Opus blocks are ~20 ms)
        assert sum(b.seconds for b in blocks) >= fed / len(live) * 5.415 - 0.5
    blocks += decoder.close()
    check_same_audio(concat_blocks(blocks), x, rate)


@pytest.mark.parametrize("codec", ["pcm_s24le", "pcm_f32le", "pcm_mulaw"])
def test_wav_variants(codec: str, stereo) -> None:
    x, rate = stereo
    out, _ = stream_decode("wav", encode(x, rate, "wav", codec=codec))
    check_same_audio(out, x, rate)
    if codec != "pcm_mulaw":
        assert np.max(np.abs(out.samples - x[: len(out.samples)])) < 1e-3


def test_wav_unknown_data_size_and_tiny_slices(speech) -> None:
    x, rate = speech
    data = bytearray(encode(x[:8000], rate, "wav"))
    pos = data.index(b"data")
    data[pos + 4 : pos + 8] = struct.pack("<I", 0xFFFFFFFF)  # as written by streaming WAV writers
    decoder = ContainerDecoder("wav")
    blocks = [b for i in range(0, len(data), 7) for b in decoder.feed(bytes(data[i : i + 7]))]
    blocks += decoder.close()
    assert concat_blocks(blocks).frames == 8000


def test_ogg_vorbis(stereo) -> None:
    x, rate = stereo
    out, _ = stream_decode("ogg", encode(x, rate, "ogg", codec="vorbis", bit_rate=64000))
    check_same_audio(out, x, rate)


def test_opus_packets_24k_60ms(speech) -> None:
    x, rate = speech
    import soxr

    x24 = soxr.resample(x[:, 0], rate, 24000)
    pcm = (np.clip(x24, -1, 1) * 32767).astype(np.int16)
    enc = av.CodecContext.create("libopus", "w")
    enc.sample_rate, enc.layout, enc.format, enc.bit_rate = 24000, "mono", "s16", 24000
    enc.options = {"frame_duration": "60"}
    enc.open()
    assert enc.frame_size == 1440
    packets: list[bytes] = []
    for i in range(0, len(pcm), 1440):
        chunk = np.pad(pcm[i : i + 1440], (0, max(0, i + 1440 - len(pcm))))
        frame = av.AudioFrame.from_ndarray(chunk.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate, frame.pts, frame.time_base = 24000, i, Fraction(1, 24000)
        packets += [bytes(p) for p in enc.encode(frame)]
    packets += [bytes(p) for p in enc.encode(None)]

    decoder = OpusPacketDecoder(24000, 1)
    blocks = []
    for packet in packets:
        got = decoder.feed(packet)
        assert got  # every packet yields its audio at once
        blocks += got
    out = concat_blocks(blocks)
    assert out.sample_rate == decoder.sample_rate == 48000 and decoder.input_rate == 24000
    assert abs(out.seconds - len(packets) * 0.06) < 1e-6
    # raw packets carry no pre-skip: + up to one frame of padding + 6.5 ms encoder lookahead
    assert 0 <= out.seconds - len(x) / rate <= 0.06 + 0.0065 + 0.05
    y = to_mono16k(out.samples, out.sample_rate)
    assert envelope_corr(y[100:], x[:, 0]) > 0.9  # ~6 ms codec delay

    with pytest.raises(HubError) as err:
        decoder.feed(b"\xff\xff\xff")
    assert err.value.code == ErrorCode.invalid_audio and not err.value.fatal
    assert decoder.feed(packets[10])  # a bad packet does not break the stream
    with pytest.raises(HubError):
        OpusPacketDecoder(22050, 1)


GARBAGE = {
    "random": np.random.default_rng(7).bytes(60000),
    "text": b"this is not audio at all\n" * 2000,
    "zeros": bytes(30000),
}


@pytest.mark.parametrize("encoding", list(ENCODINGS))
@pytest.mark.parametrize("kind", list(GARBAGE))
def test_garbage_is_invalid_audio(encoding: str, kind: str) -> None:
    decoder = ContainerDecoder(encoding)
    started = time.monotonic()
    with pytest.raises(HubError) as err:
        for piece in random_slices(GARBAGE[kind], np.random.default_rng(3)):
            decoder.feed(piece)
        decoder.close()
    assert err.value.code == ErrorCode.invalid_audio and err.value.fatal
    assert time.monotonic() - started < 5


@pytest.mark.parametrize("encoding", list(ENCODINGS))
def test_header_only_is_invalid_audio(encoding: str, speech) -> None:
    x, rate = speech
    decoder = ContainerDecoder(encoding)
    decoder.feed(encode(x, rate, encoding)[:30])
    with pytest.raises(HubError) as err:
        decoder.close()
    assert err.value.code == ErrorCode.invalid_audio


def test_cut_stream_keeps_what_arrived(speech) -> None:
    x, rate = speech
    data = encode(x, rate, "webm")
    decoder = ContainerDecoder("webm")
    blocks = decoder.feed(data[: len(data) // 2]) + decoder.close()
    assert 2.0 < concat_blocks(blocks).seconds < 3.5


def test_abandoned_decoder_releases_its_thread(speech) -> None:
    x, rate = speech
    data = encode(x, rate, "ogg")
    before = set(threading.enumerate())
    decoders = [ContainerDecoder("ogg") for _ in range(5)]
    for d in decoders:
        d.feed(data[:5000])
    workers = [t for t in threading.enumerate() if t not in before and t.name.startswith("decode-")]
    assert len(workers) == 5
    del decoders, d
    gc.collect()
    for t in workers:
        t.join(5)
        assert not t.is_alive()


def test_unknown_encoding() -> None:
    with pytest.raises(HubError) as err:
        ContainerDecoder("aac")
    assert err.value.code == ErrorCode.unsupported_encoding


@pytest.mark.parametrize("encoding", list(ENCODINGS))
def test_decode_file(encoding: str, stereo) -> None:
    x, rate = stereo
    check_same_audio(decode_file(encode(x, rate, encoding)), x, rate)


@pytest.mark.parametrize("kind", list(GARBAGE))
def test_decode_file_garbage(kind: str) -> None:
    with pytest.raises(HubError) as err:
        decode_file(GARBAGE[kind])
    assert err.value.code == ErrorCode.invalid_audio
