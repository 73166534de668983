"""Issue 23 item 4: a stream asks for no partial in a pause. From the endpointer's pause hint until an interval
after the last voiced audio no voiced audio has come since the last decode: the utterance ends (its final,
decoded from the hint on, shows the last words) or speech resumes and the next partial comes with it. Real
tiny.en model, real speech, the real scheduler (counting what it is given)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, TypeVar

import numpy as np

from asrhub.core.audio import AudioChunk, RingBuffer, ms_to_samples
from asrhub.engine.scheduler import Scheduler
from asrhub.providers.base import StreamOptions, StreamResult, StreamSink
from asrhub.providers.faster_whisper import FasterWhisperProvider
from asrhub.providers.streaming import StreamAdapter
from tests.support import clip, load_pcm16

T = TypeVar("T")
SPEECH = load_pcm16(clip("en_ljspeech_LJ001-0008").path)  # "has never been surpassed." (1.8 s)
CHUNK = ms_to_samples(40)


class Counting(Scheduler):
    """The real scheduler; it keeps the audio end of every partial it is given."""

    def __init__(self) -> None:
        super().__init__(1)
        self.partials: list[int] = []
        self.audio_end = 0

    def submit(self, fn: Callable[[], T], *, final: bool, **kw: Any) -> asyncio.Future[T] | None:
        if not final:
            self.partials.append(self.audio_end)
        return super().submit(fn, final=final, **kw)


async def partials_around_a_pause(skip: bool) -> tuple[list[int], int]:
    """Speech, a pause of 440 ms (the hint at 180 ms, as the endpointer gives it), speech again: the audio
    ends of the partials asked for, and where the pause starts."""
    sched = Counting()
    await sched.start()
    provider = FasterWhisperProvider("en", {"interim_nice": 0, "model": "bundled:tiny.en"}, sched, language="en")
    await provider.load()
    pause = np.zeros(ms_to_samples(440), dtype=np.int16)
    audio = np.concatenate([SPEECH, pause, SPEECH, pause])
    results: list[StreamResult] = []
    ring = RingBuffer(len(audio))
    stream = StreamAdapter(provider, StreamOptions("s", "en", True, False),
                           StreamSink(results.append, lambda e, u: results.clear()), ring)
    stream.skip_paused = skip
    stream.start_utterance("u1", 0)
    hint: int | None = len(SPEECH) + ms_to_samples(180)
    for i in range(0, len(SPEECH) * 2 + len(pause), CHUNK):
        piece = audio[i:i + CHUNK]
        ring.append(piece)
        sched.audio_end = i + len(piece)
        stream.push(AudioChunk(piece, i))
        if hint is not None and i + len(piece) >= hint:  # the hint comes after the chunk that completes it
            stream.pause_hint("u1", len(SPEECH))
            hint = None
    await stream.close()
    await sched.stop()
    return sched.partials, len(SPEECH)


def test_no_partial_is_asked_for_in_a_pause_and_the_next_comes_with_speech() -> None:
    asked, pause = asyncio.run(partials_around_a_pause(skip=True))
    window = range(pause + ms_to_samples(180) + CHUNK, pause + ms_to_samples(500))
    assert not [a for a in asked if a in window], asked
    assert [a for a in asked if a >= pause + ms_to_samples(500)], asked  # speech resumed: partials again


def test_without_the_rule_a_partial_is_asked_for_in_that_pause() -> None:
    asked, pause = asyncio.run(partials_around_a_pause(skip=False))
    window = range(pause + ms_to_samples(180) + CHUNK, pause + ms_to_samples(500))
    assert [a for a in asked if a in window], asked
