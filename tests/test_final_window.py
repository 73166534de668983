"""A final's minimum encoder window (`min_final_window_s`, issue 23), with the real multilingual model on real
Mandarin: a final is encoded in a window of at least that many seconds (its audio followed by silence, as
Whisper learnt on 30 s windows), a partial keeps the window of its own length, and the finals read the
Mandarin clips no worse than in their own-length windows (docs/BENCHMARKS.md: 15.5 -> 12.4 % CER on read
speech in streams, 19.4 -> 14.0 % on songs).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from typing import Any

import jiwer
import numpy as np
import pytest

from asrhub.engine.scheduler import Scheduler
from asrhub.providers.base import TranscribeOptions
from asrhub.providers.faster_whisper import FasterWhisperProvider
from asrhub.providers.localise import localise_text
from asrhub.providers.whisper_ct2 import FRAMES_PER_SECOND
from tests.support import SPEECH, clip, load_pcm16

ZH = sorted(p.stem for p in SPEECH.glob("zh_*.wav"))


def chars(text: str) -> str:
    return re.sub(r"[\W_]+", "", localise_text(text, "zh"))


def audio(name: str) -> np.ndarray:
    return load_pcm16(clip(name).path).astype(np.float32) / 32768.0


@pytest.fixture(scope="module")
def zh() -> Iterator[FasterWhisperProvider]:
    async def load() -> FasterWhisperProvider:
        sched = Scheduler(1)
        await sched.start()
        p = FasterWhisperProvider("zh", {"interim_nice": 0, "model": "bundled:base", "beam_size": 5,
                                         "min_final_window_s": 10}, sched, language="zh")
        await p.load()
        return p

    yield asyncio.run(load())


class _Windows:
    """The model, with each encoder input's frame count noted."""

    def __init__(self, model: Any) -> None:
        self.model = model
        self.frames: list[int] = []

    def encode(self, features: Any, *args: Any, **kw: Any) -> Any:
        self.frames.append(int(features.shape[-1]))
        return self.model.encode(features, *args, **kw)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.model, name)


def test_a_final_is_encoded_in_the_minimum_window_and_a_partial_in_its_own(
        zh: FasterWhisperProvider, monkeypatch: pytest.MonkeyPatch) -> None:
    ct2 = zh._ct2
    assert ct2 is not None
    seen = _Windows(ct2.m.model)
    monkeypatch.setattr(ct2, "_model_for", lambda o: seen)
    a = audio("zh_aishell3_SSB02410161")  # 2.3 s
    zh.decode(a, TranscribeOptions(language="zh"))
    zh.decode(a, TranscribeOptions(language="zh", interim=True))
    assert seen.frames == [10 * FRAMES_PER_SECOND, 4 * FRAMES_PER_SECOND], seen.frames


def test_finals_in_the_minimum_window_read_mandarin_no_worse(zh: FasterWhisperProvider) -> None:
    ct2 = zh._ct2
    assert ct2 is not None and len(ZH) >= 5
    refs = [chars(clip(n).transcript) for n in ZH]
    texts: dict[int, list[str]] = {}
    for frames in (0, ct2.min_final_frames):
        ct2.min_final_frames = frames
        texts[frames] = [chars(zh.decode(audio(n), TranscribeOptions(language="zh")).text) for n in ZH]
    own, padded = (float(jiwer.cer(refs, texts[f])) for f in sorted(texts))
    assert padded <= own, (own, padded, texts)
