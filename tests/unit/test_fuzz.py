"""Issue 7: property-based fuzzing of the command parser and the decoders.

Whatever a client sends, only a HubError with a contract code may come out: invalid_command /
payload_too_large / unsupported_encoding from the parser, invalid_audio / unsupported_encoding from the
decoders; never another exception, never a hang.
"""

from __future__ import annotations

import json
import os
import string
import time
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from asrhub.core.commands import StartSession, parse_command, parse_start
from asrhub.core.errors import ErrorCode, HubError
from asrhub.operators.decode import PcmDecoder
from asrhub.operators.decode_av import ContainerDecoder, OpusPacketDecoder

# FUZZ_EXAMPLES=1000 for a longer hunt; 50 keeps the suite quick
FUZZ = settings(max_examples=int(os.environ.get("FUZZ_EXAMPLES", "50")), deadline=None, suppress_health_check=[HealthCheck.too_slow])
PARSER_CODES = {ErrorCode.invalid_command, ErrorCode.payload_too_large, ErrorCode.unsupported_encoding}
AUDIO_CODES = {ErrorCode.invalid_audio, ErrorCode.unsupported_encoding}

KEYS = ["type", "start", "flush", "stop", "audio", "encoding", "sample_rate", "channels", "provider", "language",
        "interim_results", "word_timestamps", "vad", "enabled", "silence_ms", "threshold", "resume", "session_id",
        "last_seq", "wakeword", "record", "kind", "phrase", "x", ""]
scalars = st.one_of(st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
                    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=20),
                    st.sampled_from(["start", "flush", "stop", "pcm_s16le", "webm", "opus", "auto", "en"]))
json_values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=8), inner, max_size=5)),
    max_leaves=25)
commands = st.dictionaries(st.sampled_from(KEYS), json_values, max_size=6)


def _json_text(value: Any) -> str:
    try:
        return json.dumps(value, allow_nan=True)
    except (ValueError, TypeError):
        return "null"


def _check_parser(fn: Any, arg: Any) -> None:
    try:
        out = fn(arg)
    except HubError as e:
        assert e.code in PARSER_CODES, e
        assert e.message
    else:
        assert isinstance(out, StartSession) or getattr(out, "type", None) in ("flush", "stop")


@FUZZ
@given(st.one_of(st.text(alphabet=st.sampled_from(string.printable + "{}[]\":,\x00\u2028é"), max_size=300),
                 commands.map(_json_text), json_values.map(_json_text),
                 st.binary(max_size=300), st.integers(1, 40_000).map(lambda n: "[" * n + "]" * n)))
def test_parse_command_never_raises_anything_else(text: str | bytes) -> None:
    _check_parser(parse_command, text)


@FUZZ
@given(st.one_of(commands, json_values, commands.map(lambda d: {"type": "start", **d})))
def test_parse_start_never_raises_anything_else(data: Any) -> None:
    _check_parser(parse_start, data)
    if isinstance(data, dict):
        _check_parser(parse_command, _json_text(data))


def _slices(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    return [data[a:b] for a, b in zip(points, points[1:], strict=False)]


def _check_decoder(make: Any, pieces: list[bytes], close: bool = True) -> None:
    t0 = time.monotonic()
    dec = make()
    try:
        for p in pieces:
            dec.feed(p)
        if close:
            dec.close()
    except HubError as e:
        assert e.code in AUDIO_CODES, e
    finally:
        abort = getattr(dec, "abort", None)
        if abort is not None:
            abort()
    assert time.monotonic() - t0 < 30, "decoder took too long"


@FUZZ
@given(st.sampled_from(["pcm_s16le", "pcm_f32le"]), st.integers(1, 8), st.lists(st.binary(max_size=64), max_size=8))
def test_pcm_decoder_random_bytes(encoding: str, channels: int, pieces: list[bytes]) -> None:
    _check_decoder(lambda: PcmDecoder(encoding, 16000, channels), pieces)


MAGIC = {"webm": b"\x1aE\xdf\xa3", "ogg": b"OggS\x00\x02", "mp3": b"ID3\x03\x00\x00\x00\x00\x00\x00",
         "flac": b"fLaC\x00\x00\x00\x22", "wav": b"RIFF\xff\xff\xff\xffWAVEfmt \x10\x00\x00\x00"}


@pytest.mark.parametrize("encoding", list(MAGIC))
@FUZZ
@given(data=st.binary(min_size=0, max_size=6000), cuts=st.lists(st.integers(0, 10_000), max_size=6),
       magic=st.booleans(), close=st.booleans())
def test_container_decoder_random_bytes(encoding: str, data: bytes, cuts: list[int], magic: bool,
                                        close: bool) -> None:
    stream = (MAGIC[encoding] if magic else b"") + data
    _check_decoder(lambda: ContainerDecoder(encoding), _slices(stream, cuts), close)


@FUZZ
@given(packets=st.lists(st.binary(max_size=400), max_size=10), channels=st.sampled_from([1, 2]))
def test_opus_packet_decoder_random_bytes(packets: list[bytes], channels: int) -> None:
    _check_decoder(lambda: OpusPacketDecoder(48000, channels), packets)


@FUZZ
@given(rate=st.integers(-10, 200_000), channels=st.integers(-2, 10))
def test_opus_packet_decoder_bad_setup(rate: int, channels: int) -> None:
    try:
        OpusPacketDecoder(rate, channels)
    except HubError as e:
        assert e.code in AUDIO_CODES, e
