"""Issue 23: a push-to-talk final does not end with its opening word said again in the silence after it.

On the silence after a short utterance Whisper may start it over; `text_guard.restart_tail` cuts a restart of
two or more words, and a lone word again at the end ("4 Queen of Cloves 4" for the shared set's
cards002, "four queen of clubs", push-to-talk) was kept. A push-to-talk final's tail is digital silence
(`StreamAdapter.tail_ms` after the last voiced frame), where tiny.en wrote such a word. The final is now
decoded again with word times when its last word is its first (`redecode.one_word_restart`), and the word is
cut when its middle lies past the voiced audio.

Real tiny.en, real speech (tests/data: LibriSpeech 1089-134686-0000 cut from 100 ms before "flour" to the
end of "sauce", 0.5 s of silence in front), the hub's endpointer and a StreamAdapter with partials at fixed
audio ends (`bench.bench_promise.stream_clip`)."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from asrhub.core.audio import ms_to_samples
from asrhub.providers.base import Result, WordTiming
from asrhub.providers.redecode import one_word_restart, settle
from bench.bench_promise import stream_clip
from tests.support import clip, load_pcm16, normalise


def test_a_push_to_talk_final_does_not_say_its_first_word_again() -> None:
    pcm = load_pcm16(clip("en_libri_1089-134686-0000").path)
    cut = np.concatenate([np.zeros(ms_to_samples(500), dtype=np.int16), pcm[ms_to_samples(8760):ms_to_samples(10420)]])
    results = asyncio.run(stream_clip(cut, True))
    finals = [normalise(r.text) for r in results if r.is_final and r.text]
    assert finals == ["flour fattened sauce"], finals


def W(word: str, start_ms: int, end_ms: int) -> WordTiming:  # noqa: N802 (short, as a table reads)
    return WordTiming(word, start_ms, end_ms, 0.5)


@pytest.mark.parametrize(("words", "voiced_ms", "kept"), [
    # the cards002 push-to-talk final's re-decode (tiny.en): "4" from 1840 ms, the voiced audio ends at 1800
    ([W("4", 0, 860), W("Queen", 860, 1080), W("of", 1080, 1360), W("Cloves", 1360, 1840), W("4", 1840, 1960)],
     1800, "4 Queen of Cloves"),
    # the word said within the voiced audio stays
    ([W("4", 0, 860), W("Queen", 860, 1080), W("of", 1080, 1360), W("Cloves", 1360, 1500), W("4", 1500, 1700)],
     1800, "4 Queen of Cloves 4"),
])
def test_the_word_goes_only_when_it_lies_past_the_voiced_audio(words: list[WordTiming], voiced_ms: int,
                                                              kept: str) -> None:
    text = " ".join(w.word for w in words)
    assert one_word_restart(text)
    assert settle("tail_word", Result(text=text), Result(text=text, words=words), voiced_ms).text == kept
    assert settle("tail_word", Result(text=text), None, voiced_ms).text == text  # no word times: it stays


@pytest.mark.parametrize(("text", "suspect"), [
    ("4 Queen of Cloves 4", True), ("flour, fattened sauce, flour,", True),
    ("go go", False), ("Go, go, go", False), ("7 of clubs", False), ("", False),
])
def test_one_word_restart(text: str, suspect: bool) -> None:
    assert one_word_restart(text) is suspect
