"""Base for natively streaming providers (Vosk, Google streaming, FunASR runtime).

The session's endpointer bounds utterances; for each one the stream runs `recognize()`, a coroutine
the provider implements, which reads the utterance's audio from a queue as it arrives (starting with the
pre-roll already held in the ring buffer) and publishes partials while it goes. Its return value is the
utterance's final. Finals are delivered in utterance order; an exception becomes `sink.on_error` for
that utterance (the failover hook). Offsets handed to the provider are relative to the utterance start.
"""

from __future__ import annotations

import abc
import asyncio
import logging
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from ..core.audio import AudioChunk, RingBuffer, samples_to_ms
from .base import ProviderStream, Result, StreamOptions, StreamResult, StreamSink, WordTiming

if TYPE_CHECKING:
    from .base import Provider

log = logging.getLogger(__name__)


@dataclass
class Utterance:
    """One utterance as a provider sees it. `audio` yields int16 arrays; None marks its end."""

    id: str
    start: int
    audio: asyncio.Queue[np.ndarray | None] = field(default_factory=asyncio.Queue)
    end: int | None = None
    task: asyncio.Task[None] | None = None
    result: Result | None = None
    error: BaseException | None = None
    done: bool = False

    async def chunks(self, coalesce: bool = True) -> list[np.ndarray] | None:
        """The next audio (every piece queued so far when `coalesce`), or None at the utterance end."""
        first = await self.audio.get()
        if first is None:
            return None
        out = [first]
        while coalesce and not self.audio.empty():
            nxt = self.audio.get_nowait()
            if nxt is None:
                self.audio.put_nowait(None)  # keep the end marker for the next call
                break
            out.append(nxt)
        return out


class UtteranceStream(ProviderStream):
    def __init__(self, provider: Provider, opts: StreamOptions, sink: StreamSink, ring: RingBuffer) -> None:
        self.provider = provider
        self.opts = opts
        self.sink = sink
        self.ring = ring
        self._current: Utterance | None = None
        self._order: deque[Utterance] = deque()
        self._audio_end = 0
        self._closed = False
        self._idle = asyncio.Event()
        self._idle.set()

    # -- the provider's part ---------------------------------------------------------------
    @abc.abstractmethod
    async def recognize(self, utt: Utterance) -> Result:
        """Consume `utt.audio` until None; call `self.partial()` on the way; return the final
        (word times in ms from the utterance start)."""

    async def aclose(self) -> None:
        """Release provider resources (connections, recognisers)."""

    # -- helpers for providers ---------------------------------------------------------------
    def partial(self, utt: Utterance, text: str, stable_text: str = "", end: int | None = None) -> None:
        if self._closed or utt.done or not self.opts.interim_results or not text.strip():
            return
        stop = end if end is not None else self._audio_end if utt.end is None else utt.end
        self.sink.on_result(StreamResult(utt.id, text.strip(), False, utt.start, max(utt.start, stop),
                                         stable_text=stable_text.strip(), language=self.opts.language))

    # -- ProviderStream ------------------------------------------------------------------------
    def push(self, chunk: AudioChunk) -> None:
        self._audio_end = chunk.end
        if self._current is not None and not self._closed and len(chunk.samples):
            self._current.audio.put_nowait(chunk.samples)

    def start_utterance(self, utterance_id: str, offset: int, stable: str = "") -> None:
        if self._closed:
            return
        if self._current is not None:
            self.end_utterance(self._current.id, self._audio_end)
        utt = Utterance(utterance_id, offset)
        head = self.ring.read(offset, self._audio_end)
        if len(head):
            utt.audio.put_nowait(head)
        self._current = utt
        self._order.append(utt)
        self._idle.clear()
        utt.task = asyncio.get_running_loop().create_task(self._run(utt), name=f"{self.provider.name}-{utterance_id}")

    def end_utterance(self, utterance_id: str, offset: int) -> None:
        utt = self._current
        if utt is None or utt.id != utterance_id:
            return
        self._current = None
        utt.end = offset
        utt.audio.put_nowait(None)

    async def _run(self, utt: Utterance) -> None:
        try:
            utt.result = await self.recognize(utt)
        except asyncio.CancelledError:
            utt.error = asyncio.CancelledError()
        except Exception as e:
            log.warning("%s: utterance %s of %s failed: %s", self.provider.name, utt.id, self.opts.session_id, e)
            utt.error = e
        utt.done = True
        self._deliver()

    def _deliver(self) -> None:
        while self._order and self._order[0].done:
            utt = self._order.popleft()
            if self._closed or isinstance(utt.error, asyncio.CancelledError):
                continue
            if utt.error is not None:
                self.sink.on_error(utt.error, utt.id)
                continue
            res = utt.result or Result("")
            end = utt.end if utt.end is not None else self._audio_end
            base = samples_to_ms(utt.start)
            words = tuple(WordTiming(w.word, w.start_ms + base, w.end_ms + base, w.confidence) for w in res.words)
            text = res.text.strip()
            self.sink.on_result(StreamResult(utt.id, text, True, utt.start, end, stable_text=text, words=words,
                                             language=res.language or self.opts.language))
        if not self._order:
            self._idle.set()

    async def drain(self) -> None:
        await self._idle.wait()

    async def close(self) -> None:
        self._closed = True
        self._current = None
        tasks = [u.task for u in self._order if u.task is not None and not u.task.done()]
        for t in tasks:
            t.cancel()
        self._order.clear()
        self._idle.set()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        try:
            await self.aclose()
        except Exception:
            log.exception("%s: closing the stream failed", self.provider.name)
