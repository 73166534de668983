"""StreamAdapter: turns a batch provider into a streaming one (DESIGN §5).

Utterances are bounded by the session's VAD endpointer. While an utterance is open its audio is
re-decoded every `interim_interval_ms` of new audio (driven by arriving audio, not a timer); the word
prefix two successive hypotheses agree on becomes `stable_text` (LocalAgreement-2) and is never taken
back. At the utterance end it is decoded once more for the final. Finals are delivered in utterance
order even when two workers finish out of order.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections import deque
from dataclasses import dataclass, field

from ..core.audio import AudioChunk, RingBuffer, int16_to_float, ms_to_samples, samples_to_ms
from ..core.work import Superseded
from .base import (
    BatchDecoder,
    ProviderStream,
    Result,
    StreamOptions,
    StreamResult,
    StreamSink,
    TranscribeOptions,
    WordTiming,
)

log = logging.getLogger(__name__)

_NORM = re.compile(r"[^\w']+")


def _norm(word: str) -> str:
    return _NORM.sub("", word.lower())


def agreed_prefix(a: list[str], b: list[str]) -> int:
    """Number of leading words two hypotheses share (case and punctuation ignored)."""
    n = 0
    for x, y in zip(a, b, strict=False):
        if _norm(x) != _norm(y):
            break
        n += 1
    return n


@dataclass
class _Utterance:
    id: str
    start: int
    end: int | None = None
    committed: list[str] = field(default_factory=list)
    previous: list[str] = field(default_factory=list)
    last_partial_end: int = 0
    done: bool = False
    speculative: tuple[int, asyncio.Future[Result]] | None = None  # (end offset, decode started at a pause)


@dataclass
class _PendingFinal:
    utt: _Utterance
    future: asyncio.Future[Result]
    end: int


class StreamAdapter(ProviderStream):
    tail_ms = 300       # audio kept after the endpoint for the final decode
    min_final_ms = 120  # shorter utterances are dropped (clicks, breaths)

    def __init__(self, provider: BatchDecoder, opts: StreamOptions, sink: StreamSink, ring: RingBuffer):
        self.provider = provider
        self.opts = opts
        self.sink = sink
        self.ring = ring
        self.interval = ms_to_samples(opts.interim_interval_ms)
        self.min_partial = ms_to_samples(opts.min_partial_ms)
        self.use_context = bool(provider.options.get("condition_on_previous", True))
        self._utt: _Utterance | None = None
        self._audio_end = 0
        self._finals: deque[_PendingFinal] = deque()
        self._context = ""
        self._closed = False
        self.speculation_hits = 0
        self._idle = asyncio.Event()
        self._idle.set()

    # -- markers and audio ---------------------------------------------------------------
    def push(self, chunk: AudioChunk) -> None:
        self._audio_end = chunk.end
        u = self._utt
        if u is None or not self.opts.interim_results or self._closed:
            return
        if self._audio_end - u.start >= self.min_partial and self._audio_end - u.last_partial_end >= self.interval:
            self._request_partial(u)

    def start_utterance(self, utterance_id: str, offset: int) -> None:
        self._utt = _Utterance(utterance_id, offset, last_partial_end=offset)

    def pause_hint(self, utterance_id: str, offset: int) -> None:
        """Start the final's decode at a pause; if the endpoint lands on the same offset, the final is
        (nearly) ready when it is declared. Speech that resumes makes the speculation stale."""
        u = self._utt
        if u is None or u.id != utterance_id or offset - u.start < ms_to_samples(self.min_final_ms):
            return
        if self.provider.scheduler.finals_busy():
            return  # speculation would take a final lane from a real final
        self._drop_speculation(u)
        u.speculative = (offset, self._submit_final(u, offset))

    def _drop_speculation(self, u: _Utterance) -> None:
        if u.speculative is not None:
            fut = u.speculative[1]
            if not fut.done():
                fut.cancel()  # dropped by the scheduler if not started; a running decode is ignored
            elif not fut.cancelled():
                fut.exception()  # a failed speculation that is no longer needed is not an error
            u.speculative = None

    def _submit_final(self, u: _Utterance, offset: int) -> asyncio.Future[Result]:
        end = min(offset + ms_to_samples(self.tail_ms), max(self._audio_end, offset))
        audio = int16_to_float(self.ring.read(u.start, end))
        opts = TranscribeOptions(language=self.opts.language, word_timestamps=self.opts.word_timestamps,
                                 prompt=self._context or None if self.use_context else None,
                                 task=self.opts.task, initial_prompt=self.opts.prompt, hotwords=self.opts.hotwords)
        fut = self.provider.scheduler.submit(lambda: self.provider.timed_decode(audio, opts), final=True,
                                             batch=self.provider.batch(audio, opts))
        assert fut is not None
        return fut

    def end_utterance(self, utterance_id: str, offset: int) -> None:
        u = self._utt
        if u is None or u.id != utterance_id:
            return
        self._utt = None
        u.end = offset
        u.done = True
        if offset - u.start < ms_to_samples(self.min_final_ms):
            self._drop_speculation(u)
            # an empty final: the session stops waiting for this utterance (and may trim its audio)
            self.sink.on_result(StreamResult(u.id, "", True, u.start, offset, language=self.opts.language))
            return
        if u.speculative is not None and u.speculative[0] == offset and not u.speculative[1].cancelled():
            fut = u.speculative[1]
            self.speculation_hits += 1
        else:
            self._drop_speculation(u)
            fut = self._submit_final(u, offset)
        u.speculative = None
        self._finals.append(_PendingFinal(u, fut, offset))
        self._idle.clear()
        fut.add_done_callback(lambda _f: self._deliver_finals())

    # -- partials --------------------------------------------------------------------------
    def _request_partial(self, u: _Utterance) -> None:
        u.last_partial_end = self._audio_end
        end = self._audio_end
        audio = int16_to_float(self.ring.read(u.start, end))
        opts = TranscribeOptions(language=self.opts.language, interim=True,
                                 prefix=" ".join(u.committed) or None,
                                 prompt=self._context or None if self.use_context else None,
                                 task=self.opts.task, initial_prompt=self.opts.prompt, hotwords=self.opts.hotwords)
        fut = self.provider.scheduler.submit(lambda: self.provider.timed_decode(audio, opts), final=False,
                                             batch=self.provider.batch(audio, opts),
                                             key=self.opts.session_id)
        if fut is None:
            return  # skipped under load
        fut.add_done_callback(lambda f: self._on_partial(u, end, f))

    def _on_partial(self, u: _Utterance, end: int, fut: asyncio.Future[Result]) -> None:
        if fut.cancelled() or u.done or self._closed:
            return
        exc = fut.exception()
        if isinstance(exc, Superseded):
            return
        if exc is not None:
            log.warning("partial decode failed for %s: %s", self.opts.session_id, exc)
            return
        res = fut.result()
        words = res.text.split()
        if not words:
            return
        agreed = agreed_prefix(u.previous, words)
        if agreed > len(u.committed) and agreed_prefix(u.committed, words) == len(u.committed):
            u.committed = words[:agreed]
        u.previous = words
        text_words = u.committed + words[len(u.committed):]
        self.sink.on_result(StreamResult(u.id, " ".join(text_words), False, u.start, end,
                                         stable_text=" ".join(u.committed), language=res.language or self.opts.language))

    # -- finals ----------------------------------------------------------------------------
    def _deliver_finals(self) -> None:
        while self._finals and self._finals[0].future.done():
            pf = self._finals.popleft()
            if pf.future.cancelled():
                continue
            exc = pf.future.exception()
            if exc is not None:
                self.sink.on_error(exc, pf.utt.id)
                continue
            res = pf.future.result()
            text = res.text.strip()
            if text:
                self._context = text[-200:]
                base = samples_to_ms(pf.utt.start)
                words = tuple(WordTiming(w.word, w.start_ms + base, w.end_ms + base, w.confidence)
                              for w in res.words)
                self.sink.on_result(StreamResult(pf.utt.id, text, True, pf.utt.start, pf.end, stable_text=text,
                                                 words=words, language=res.language or self.opts.language))
            else:
                self.sink.on_result(StreamResult(pf.utt.id, "", True, pf.utt.start, pf.end,
                                                 language=res.language or self.opts.language))
        if not self._finals:
            self._idle.set()

    async def drain(self) -> None:
        await self._idle.wait()

    async def close(self) -> None:
        self._closed = True
        for pf in self._finals:
            if not pf.future.done():
                pf.future.cancel()
        self._finals.clear()
        self._idle.set()
