"""Wake word spotting with PocketSphinx on real LibriSpeech audio, streamed like a live client."""

from __future__ import annotations

import numpy as np
import pytest

from asrhub.core.errors import ErrorCode, HubError
from asrhub.operators.wakeword import KeyphraseSpotter, WakeDetection
from tests.unit.audio_helpers import read_audio, to_mono16k

TARGET = "en_libri_1089-134691-0001.flac"  # "... BUT HE COULD WAIT NO LONGER", 5.4 s
OTHER = "en_libri_1995-1837-0001.wav"  # no "wait no longer"


def pcm16k(name: str) -> np.ndarray:
    x, rate = read_audio(name)
    return (np.clip(to_mono16k(x, rate), -1, 1) * 32767).astype(np.int16)


def stream(spotter: KeyphraseSpotter, audio: np.ndarray, base: int, seed: int = 0) -> list[WakeDetection]:
    """Feed 20-100 ms pieces with absolute offsets starting at ``base``."""
    rng = np.random.default_rng(seed)
    found: list[WakeDetection] = []
    pos = 0
    while pos < len(audio):
        n = int(rng.integers(320, 1601))
        found += spotter.feed(audio[pos : pos + n], base + pos)
        pos += n
    return found


def test_phrase_is_detected_near_its_end() -> None:
    base = 123_456
    found = stream(KeyphraseSpotter("wait no longer"), pcm16k(TARGET), base)
    assert len(found) == 1
    assert found[0].phrase == "wait no longer"
    at = (found[0].offset_samples - base) / 16000
    assert 4.0 < at <= 5.415, at


def test_other_speech_does_not_trigger() -> None:
    assert stream(KeyphraseSpotter("wait no longer"), pcm16k(OTHER), 0) == []


def test_one_spotter_over_a_session_with_both_files() -> None:
    """Other speech, then the phrase: one detection, placed in the second file."""
    other, target = pcm16k(OTHER), pcm16k(TARGET)
    spotter = KeyphraseSpotter("Wait  No longer")
    found = stream(spotter, np.concatenate([other, target]), 0, seed=1)
    assert len(found) == 1
    assert 4.0 < (found[0].offset_samples - len(other)) / 16000 <= 5.415
    spotter.close()
    with pytest.raises(HubError):
        spotter.feed(target[:320], 0)


def test_reset_and_timeline_gap() -> None:
    spotter = KeyphraseSpotter("wait no longer")
    target = pcm16k(TARGET)
    spotter.feed(target[:16000], 0)
    spotter.reset()
    found = stream(spotter, target, 10 * 16000)  # restarts at the new offset
    assert len(found) == 1 and found[0].offset_samples > 14 * 16000


def test_unknown_word_is_rejected() -> None:
    with pytest.raises(HubError) as err:
        KeyphraseSpotter("hello xyzzyq")
    assert err.value.code == ErrorCode.invalid_command
