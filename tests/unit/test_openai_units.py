"""Units of the OpenAI-compatible layer: language names, G.711 decoding, append-only deltas, Realtime
client-event parsing and chunking_strategy parsing."""

from __future__ import annotations

import audioop
import base64
import json

import numpy as np
import pytest

from asrhub.api.languages import language_code, language_name
from asrhub.api.openai_compat import _chunking
from asrhub.api.openai_errors import ParamError
from asrhub.api.openai_stream import _Utterances
from asrhub.api.realtime_events import (
    INPUT_AUDIO,
    Append,
    Commit,
    RealtimeProblem,
    SessionUpdate,
    TranscriptionConfig,
    parse_client_event,
    session_event,
)
from asrhub.core.events import TranscriptFinal, TranscriptPartial
from asrhub.operators.decode import PcmDecoder


def test_language_names() -> None:
    assert language_name("en") == "english" and language_name("zh-TW") == "chinese"
    assert language_name("yue") == "cantonese" and language_name("xx") == "xx" and language_name(None) == ""
    assert language_code("English") == "en" and language_code("de") == "de" and language_code("") is None


@pytest.mark.parametrize("fmt,encode,decode", [("audio/pcmu", audioop.lin2ulaw, audioop.ulaw2lin),
                                               ("audio/pcma", audioop.lin2alaw, audioop.alaw2lin)])
def test_g711_matches_the_reference_decoder(fmt: str, encode: object, decode: object) -> None:
    """The Realtime socket's G.711 goes to the pipeline's decoder (8 kHz): it decodes as the reference does."""
    audio = INPUT_AUDIO[fmt]  # type: ignore[index]
    assert (audio.sample_rate, audio.sample_bytes, audio.spec().sample_rate) == (8000, 1, 8000)

    def pipeline(coded: bytes) -> bytes:
        x = PcmDecoder(audio.encoding, audio.sample_rate, 1).feed(coded)
        return np.rint(x[:, 0] * 32768).astype("<i2").tobytes()

    every_code = bytes(range(256))
    assert pipeline(every_code) == decode(every_code, 2)  # type: ignore[operator]
    speechlike = (np.sin(np.arange(4000) / 7) * 12000).astype("<i2").tobytes()
    coded = encode(speechlike, 2)  # type: ignore[operator]
    assert pipeline(coded) == decode(coded, 2)  # type: ignore[operator]


def _p(uid: str, stable: str) -> TranscriptPartial:
    return TranscriptPartial(session_id="s", utterance_id=uid, text=stable + " maybe", stable_text=stable,
                             start_ms=0, end_ms=1)


def _f(uid: str, text: str) -> TranscriptFinal:
    return TranscriptFinal(session_id="s", utterance_id=uid, text=text, start_ms=0, end_ms=1, provider="p",
                           latency_ms=0)


def test_deltas_are_append_only_and_concatenate_to_the_finals() -> None:
    u = _Utterances()
    out = [u.partial(_p("u1", "")), u.partial(_p("u1", "Ask not")), u.partial(_p("u1", "Ask not")),
           u.final(_f("u1", "Ask not what.")), u.partial(_p("u2", "Ask")), u.final(_f("u2", "Ask what you can."))]
    assert out == ["", "Ask not", "", " what.", " Ask", " what you can."]
    assert "".join(out) == " ".join(u.finals)


def test_realtime_client_events() -> None:
    cfg = TranscriptionConfig()
    ev = parse_client_event(json.dumps({"type": "input_audio_buffer.append", "audio": base64.b64encode(b"ab")
                                        .decode(), "event_id": "e1"}), cfg)
    assert ev == Append(b"ab", "e1")
    assert parse_client_event('{"type": "input_audio_buffer.commit"}', cfg) == Commit()
    upd = parse_client_event(json.dumps({"type": "session.update", "session": {"type": "transcription", "audio": {
        "input": {"format": {"type": "audio/pcmu"}, "turn_detection": None,
                  "transcription": {"model": "whisper-1", "languages": ["de"]}}}}}), cfg)
    assert isinstance(upd, SessionUpdate)
    assert (upd.config.format, upd.config.server_vad, upd.config.language) == ("audio/pcmu", False, "de")
    beta = parse_client_event(json.dumps({"type": "transcription_session.update", "session": {
        "input_audio_format": "g711_alaw", "turn_detection": {"type": "server_vad", "silence_duration_ms": 300}}}),
        cfg)
    assert isinstance(beta, SessionUpdate) and beta.config.beta and beta.config.silence_ms == 300
    assert session_event(beta.config, created=False).model_dump()["type"] == "transcription_session.updated"
    for bad, param in [('{"type": "input_audio_buffer.clear", "x": 1}', "x"), ('{"type": 3}', "type"),
                       ('{"type": "session.update", "session": {"type": "realtime"}}', "session.type"),
                       ('{"type": "input_audio_buffer.append", "audio": "%%%"}', "audio")]:
        with pytest.raises(RealtimeProblem) as exc:
            parse_client_event(bad, cfg)
        assert exc.value.param == param, bad


def test_chunking_strategy() -> None:
    assert _chunking(None, None, None, None, None) == (None, None)
    assert _chunking("auto", None, None, None, None) == (None, None)
    split, thr = _chunking(None, "server_vad", 300, 100, 0.6)
    assert split is not None and (split.silence_ms, split.pre_roll_ms, split.aggressiveness, thr) == (300, 100, 2, 0.6)
    split, _ = _chunking('{"type": "server_vad", "silence_duration_ms": 800}', None, None, None, None)
    assert split is not None and split.silence_ms == 800
    for raw, kind, sil in [("fast", None, None), (None, "semantic", None), (None, "server_vad", 5)]:
        with pytest.raises(ParamError):
            _chunking(raw, kind, sil, None, None)
