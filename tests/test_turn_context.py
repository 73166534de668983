"""A piece after a turn cut is decoded with its left context (issue 19, BENCHMARKS sixth and seventh slices).

A turn rule ends an utterance at a short pause the model calls a turn end, often before a long rest of the
sentence: semantic/medium cuts FLEURS en-000 at "... communication channels, | styles in the west could lag
behind by 25 to 30 years." (a 0.27 s pause), and the piece after the cut is 5.4 s long. A 2-pass final is
decoded with the finals just before it in front (their text forced as the prefix) when the piece is at most
`StreamAdapter.context_below_s` long; at 4 s (before) this piece was decoded alone, and in the hub its first
words then depended on what its partials had promised (English word errors 42 against silence mode's 40 of
469; with the limit at 10 s, 40 against 40). Here the two pieces go through a StreamAdapter on tiny.en with
the cut's markers (no partials: deterministic): the second piece's final is decoded from the first piece's
start with the first piece's text forced, and its own words are read right, without the forced ones.
"""

from __future__ import annotations

import asyncio

import numpy as np

from asrhub.core.audio import AudioChunk, RingBuffer, ms_to_samples
from asrhub.engine.scheduler import Scheduler
from asrhub.providers.base import Result, StreamOptions, StreamResult, StreamSink, TranscribeOptions
from asrhub.providers.faster_whisper import FasterWhisperProvider
from asrhub.providers.streaming import StreamAdapter
from tests.support import SPEECH, clip, load_pcm16, normalise

CLIP = clip("en_cuttledoc_fleurs-en-000", SPEECH.parent / "varied")
FIRST = (0.76, 4.00)   # "However, due to the slow communication channels," (the pause: 3.87-4.14 s)
SECOND = (4.04, 9.48)  # "styles in the west could lag behind by 25 to 30 years." (5.4 s)
CHUNK = ms_to_samples(40)


def at(seconds: float) -> int:
    return ms_to_samples(1000 * seconds) // CHUNK * CHUNK


async def stream_cut() -> tuple[list[StreamResult], list[tuple[int, str | None]]]:
    """The finals of the two pieces, and each final decode's (audio length, forced prefix)."""
    sched = Scheduler(1)
    await sched.start()
    try:
        provider = FasterWhisperProvider("en", {"interim_nice": 0, "model": "bundled:tiny.en"}, sched, language="en")
        await provider.load()
        pcm = load_pcm16(CLIP.path)
        audio = np.concatenate([pcm, np.zeros(ms_to_samples(1000), dtype=np.int16)])
        results: list[StreamResult] = []
        errors: list[BaseException] = []
        ring = RingBuffer(len(audio))
        stream = StreamAdapter(provider, StreamOptions("s", "en", False, False),
                               StreamSink(results.append, lambda e, _u: errors.append(e)), ring)
        decodes: list[tuple[int, str | None]] = []
        decode = stream._decode

        def spy(samples: np.ndarray, opts: TranscribeOptions) -> asyncio.Future[Result]:
            decodes.append((len(samples), opts.prefix))
            return decode(samples, opts)

        stream._decode = spy  # type: ignore[method-assign]
        marks = {at(FIRST[0]): ("start", "u1"), at(FIRST[1]): ("end", "u1"),
                 at(SECOND[0]): ("start", "u2"), at(SECOND[1]): ("end", "u2")}
        for i in range(0, len(audio), CHUNK):
            mark = marks.get(i)
            if mark is not None and mark[0] == "start":
                stream.start_utterance(mark[1], i)
            elif mark is not None:
                stream.end_utterance(mark[1], i)
                await asyncio.wait_for(stream.drain(), 60)  # the first final is heard before the second starts
            chunk = AudioChunk(audio[i:i + CHUNK], i)
            ring.append(chunk.samples)
            stream.push(chunk)
        await asyncio.wait_for(stream.drain(), 60)
        await stream.close()
        if errors:
            raise errors[0]
        return [r for r in results if r.is_final], decodes
    finally:
        await sched.stop()


async def test_the_piece_after_a_turn_cut_is_decoded_with_the_piece_before_it() -> None:
    finals, decodes = await stream_cut()
    assert [r.utterance_id for r in finals] == ["u1", "u2"], finals
    first, second = finals
    assert normalise(first.text) == "however due to the slow communication channels", first.text
    assert len(decodes) == 2, decodes
    length, prefix = decodes[1]
    # the second final's audio starts at the first piece (+ the 180 ms tail) and the first piece's text is forced
    assert length == at(SECOND[1]) - at(FIRST[0]) + ms_to_samples(StreamAdapter.tail_ms), (length, decodes)
    assert prefix == first.text, decodes
    # its own words alone, read as the reference reads them
    assert normalise(second.text) == "styles in the west could lag behind by 25 to 30 years", second.text
