"""One live session's data plane: its pipeline, provider stream, audio ring buffer, event channel and
timers. Audio never enters the store.

The session keeps nothing the store's record of it says: whether it exists, is open, finalizing or ended,
which provider it is on, its transport and API key are the sessions slice's to say (read them through its
selectors). It keeps what only the data plane can know: which utterances still wait for their final (to
trim the ring buffer and to replay them on failover), when audio arrived (latency), and the timers that
report to the store (idle, a final that is late).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..core.audio import HUB_RATE, AudioChunk, RingBuffer, ms_to_samples, samples_to_ms
from ..core.channel import EventChannel
from ..core.commands import StartSession
from ..core.events import TranscriptFinal, TranscriptPartial, Word
from ..operators.base import PauseHint, SpeechEnd, SpeechStart
from ..providers.base import ProviderStream, StreamResult

if TYPE_CHECKING:
    from ..operators.pipeline import Pipeline


class Session:
    def __init__(self, session_id: str, start: StartSession, pipeline: Pipeline, channel: EventChannel,
                 buffer_s: float) -> None:
        self.id = session_id
        self.start = start
        self.pipeline: Pipeline | None = pipeline
        self.channel = channel
        self.ring = RingBuffer(int(buffer_s * HUB_RATE))
        self.stream: ProviderStream | None = None              # on the provider the session's record names
        self.last_activity = 0.0                              # the loop's time of its last command (service)
        self.utterance_index = 0                              # utterance ids: u1, u2, ...
        self.open_utterance: tuple[str, int] | None = None   # (id, audio start)
        self.pending: dict[str, tuple[int, int]] = {}         # utterance id -> (start, end) awaiting final
        self.promised: dict[str, str] = {}  # utterance id -> the stable_text its last partial promised
        self.first_partial_due: dict[str, int] = {}           # utterance id -> speech onset, until its 1st partial
        self._arrivals: deque[tuple[int, float]] = deque(maxlen=512)  # (chunk end offset, arrival time)
        self.audio_bytes = 0
        self.tasks: set[asyncio.Task[Any]] = set()
        self.final_timers: dict[str, asyncio.TimerHandle] = {}  # utterance id -> its final's deadline
        self.idle_timer: asyncio.TimerHandle | None = None
        self.settled = asyncio.Event()                        # set while no utterance awaits its final
        self.settled.set()
        self.end_of_turn: dict[str, bool] = {}                # semantic turn mode: utterance id -> its final's
        self.locale: str | None = None                        # the language tag `stream` was opened with
        self.held: list[StreamResult] = []                    # finals waiting for their utterance's language
        self.last_speech_end: int | None = None               # where the last utterance ended (pauses)

    def continue_at(self, offset: int, utterances: int, promised: str = "") -> None:
        """A session taken over from another node: its timeline goes on at `offset` (samples), its
        utterance numbers after `utterances`; `promised`: the stable_text the next utterance had been
        promised there. Before any audio."""
        if promised:
            self.promised[f"u{utterances + 1}"] = promised
        if self.pipeline is not None:
            self.pipeline.offset = offset
        self.ring.start = self.ring.end = offset
        self.utterance_index = utterances
        self.last_speech_end = offset

    # -- timing ----------------------------------------------------------------------------
    @property
    def audio_samples(self) -> int:
        return self.pipeline.offset if self.pipeline is not None else self.ring.end

    def arrival_time(self, offset: int) -> float:
        """Wall time (perf_counter) at which the hub had received audio up to `offset`."""
        for end, t in self._arrivals:
            if end >= offset:
                return t
        return self._arrivals[-1][1] if self._arrivals else time.perf_counter()

    # -- data plane ------------------------------------------------------------------------
    def feed(self, items: list[Any], on_marker: Callable[[SpeechStart | SpeechEnd, str], None]) -> None:
        now = time.perf_counter()
        for item in items:
            if isinstance(item, AudioChunk):
                self.ring.append(item.samples)
                self._arrivals.append((item.end, now))
                if self.stream is not None:
                    self.stream.push(item)
            elif isinstance(item, SpeechStart):
                self.utterance_index += 1
                uid = f"u{self.utterance_index}"
                self.open_utterance = (uid, item.audio_start)
                self.first_partial_due = {uid: item.offset}
                if self.stream is not None:  # (a promise holds on: an utterance decoded again after a takeover)
                    self.stream.start_utterance(uid, item.audio_start, self.promised.get(uid, ""))
                on_marker(item, uid)
            elif isinstance(item, PauseHint):
                if self.stream is not None and self.open_utterance is not None:
                    self.stream.pause_hint(self.open_utterance[0], item.offset, item.on_text)
            elif isinstance(item, SpeechEnd) and self.open_utterance is not None:
                uid, start = self.open_utterance
                self.open_utterance = None
                self.last_speech_end = item.offset
                self.await_final(uid, start, item.offset)
                if self.pipeline is not None and self.pipeline.spec.turn is not None:
                    self.end_of_turn[uid] = item.reason != "max_length"  # a long turn cut in two goes on
                on_marker(item, uid)
                if self.stream is not None:
                    self.stream.end_utterance(uid, item.offset)
        self._trim()

    def await_final(self, uid: str, start: int, end: int) -> None:
        self.pending[uid] = (start, end)
        self.settled.clear()

    def final_arrived(self, uid: str) -> bool:
        """The utterance's final came (or was given up on); False if it was not awaited."""
        timer = self.final_timers.pop(uid, None)
        if timer is not None:
            timer.cancel()
        found = self.pending.pop(uid, None) is not None
        self.promised.pop(uid, None)
        self.end_of_turn.pop(uid, None)  # a final without text has no event to carry it
        if not self.pending:
            self.settled.set()
        return found

    def _trim(self) -> None:
        keep = self.ring.end - ms_to_samples(1000)
        if self.open_utterance is not None:
            keep = min(keep, self.open_utterance[1])
        for start, _ in self.pending.values():
            keep = min(keep, start)
        self.ring.trim(keep)

    # -- results -> events -------------------------------------------------------------------
    def partial_event(self, r: StreamResult) -> TranscriptPartial:
        if r.stable_text:  # kept for a replay on another provider (failover.replay): the promise holds there
            self.promised[r.utterance_id] = r.stable_text
        return TranscriptPartial(session_id=self.id, utterance_id=r.utterance_id, text=r.text,
                                 stable_text=r.stable_text, start_ms=samples_to_ms(r.start),
                                 end_ms=samples_to_ms(r.end))

    def pause_before(self, offset: int) -> float:
        """Seconds between the end of the last utterance and `offset` (inf before the first)."""
        return float("inf") if self.last_speech_end is None else max(0, offset - self.last_speech_end) / HUB_RATE

    def final_event(self, r: StreamResult, provider: str, language_probability: float | None = None) -> TranscriptFinal:
        now = time.perf_counter()
        latency = (now - self.arrival_time(r.end)) * 1000.0
        # how far the session's results trail its audio: the oldest utterance end still without its
        # final (this one included) arrived this long ago
        oldest = min([r.end, *(end for _, end in self.pending.values())])
        lag = (now - self.arrival_time(oldest)) * 1000.0
        words = [Word(word=w.word, start_ms=w.start_ms, end_ms=w.end_ms, confidence=round(w.confidence, 4))
                 for w in r.words] if self.start.word_timestamps else None
        return TranscriptFinal(session_id=self.id, utterance_id=r.utterance_id, text=r.text,
                               start_ms=samples_to_ms(r.start), end_ms=samples_to_ms(r.end), words=words,
                               language=r.language, language_probability=language_probability,
                               provider=provider, latency_ms=max(0, int(latency)),
                               lag_ms=max(0, int(lag)), end_of_turn=self.end_of_turn.pop(r.utterance_id, None),
                               recording=self.pipeline.recording_for(r.start, r.end) if self.pipeline else None)

    def release(self) -> None:
        """Free the data plane once the session has ended (the channel stays for resume)."""
        for timer in (*self.final_timers.values(), self.idle_timer):
            if timer is not None:
                timer.cancel()
        self.final_timers.clear()
        self.idle_timer = None
        self.pending.clear()
        self.held.clear()
        self.settled.set()
        if self.pipeline is not None:
            self.pipeline.release()  # closes recordings, returns the wake word decoder
        self.pipeline = None
        self.ring = RingBuffer(1)
        self.stream = None
        self._arrivals.clear()
