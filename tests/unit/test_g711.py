"""G.711 decoding (pcm_mulaw / pcm_alaw): the lookup tables against the standard's reference values,
the decoder's framing, and the test-side encoders the WER test relies on."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from asrhub.core.commands import parse_command
from asrhub.core.errors import HubError
from asrhub.operators.decode import make_decoder
from asrhub.operators.g711 import ALAW_TO_INT16, MULAW_TO_INT16
from tests.telephony import alaw_encode, mulaw_encode

# ITU-T G.711 reference points (code byte -> linear value on the 16-bit scale)
MULAW_POINTS = {0x00: -32124, 0x7F: 0, 0x80: 32124, 0xFF: 0, 0x70: -120, 0xF0: 120, 0x0F: -16764, 0x8F: 16764}
ALAW_POINTS = {0xD5: 8, 0x55: -8, 0xAA: 32256, 0x2A: -32256, 0x80: 5504, 0x00: -5504}


def test_tables_hit_the_reference_points() -> None:
    for code, value in MULAW_POINTS.items():
        assert MULAW_TO_INT16[code] == value, hex(code)
    for code, value in ALAW_POINTS.items():
        assert ALAW_TO_INT16[code] == value, hex(code)
    # monotonic within each sign: the segment/mantissa expansion has no holes or swaps
    pos_mu = MULAW_TO_INT16[0x80:][::-1]  # 0xFF (smallest) .. 0x80 (largest)
    assert np.all(np.diff(pos_mu.astype(int)) > 0)
    assert len(set(ALAW_TO_INT16.tolist())) == 256 and len(set(MULAW_TO_INT16.tolist())) == 255  # μ-law: ±0


def test_tables_match_the_stdlib_reference() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import audioop  # removed in Python 3.13; the project runs 3.11
    codes = bytes(range(256))
    assert np.array_equal(np.frombuffer(audioop.ulaw2lin(codes, 2), "<i2"), MULAW_TO_INT16)
    assert np.array_equal(np.frombuffer(audioop.alaw2lin(codes, 2), "<i2"), ALAW_TO_INT16)


@pytest.mark.parametrize(("encoding", "encode"), [("pcm_mulaw", mulaw_encode), ("pcm_alaw", alaw_encode)])
def test_decoder_round_trip_and_framing(encoding: str, encode: object) -> None:
    rng = np.random.default_rng(3)
    x = (np.sin(np.arange(8000) / 8000 * 2 * np.pi * 440) * 20000 + rng.normal(0, 300, 8000)).astype(np.int16)
    data = encode(x)  # type: ignore[operator]
    assert len(data) == len(x)
    dec = make_decoder(encoding, 8000, 1)
    out = np.concatenate([dec.feed(data[i:i + 161]) for i in range(0, len(data), 161)])  # any slicing
    assert out.shape == (8000, 1) and out.dtype == np.float32
    err = np.abs(out[:, 0] * 32768 - x)
    assert np.all(err <= np.abs(x) / 16 + 16)  # within half a quantisation step of its segment
    stereo = make_decoder(encoding, 8000, 2)
    assert stereo.feed(data[:1000]).shape == (500, 2)
    with pytest.raises(HubError) as info:
        stereo.feed(data[:999])
    assert info.value.code.value == "invalid_audio" and "frame" in info.value.message


def test_encodings_are_part_of_the_contract() -> None:
    for enc in ("pcm_mulaw", "pcm_alaw"):
        cmd = parse_command(f'{{"type": "start", "audio": {{"encoding": "{enc}", "sample_rate": 8000}}}}')
        assert cmd.type == "start" and cmd.audio.encoding == enc  # type: ignore[union-attr]
    with pytest.raises(HubError) as info:
        parse_command('{"type": "start", "audio": {"encoding": "pcm_ulaw"}}')
    assert info.value.code.value == "unsupported_encoding" and "pcm_mulaw" in info.value.message
