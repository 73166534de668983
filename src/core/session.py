"""One live session: its pipeline, provider stream, audio buffer and event channel.

The session owns the data plane (audio never enters the store). It reports control-plane facts
(speech edges, finals, errors, end) by dispatching actions; the store's router then puts the event in
this session's channel. Partials skip the store (they may be coalesced) and go straight to the channel.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..operators.base import PauseHint, SpeechEnd, SpeechStart
from ..providers.base import Provider, ProviderStream, StreamResult
from .audio import HUB_RATE, AudioChunk, RingBuffer, ms_to_samples, samples_to_ms
from .channel import EventChannel
from .commands import StartSession
from .events import Event, TranscriptFinal, TranscriptPartial, Word

if TYPE_CHECKING:
    from ..operators.pipeline import Pipeline


class Session:
    def __init__(self, session_id: str, start: StartSession, transport: str, api_key: str | None,
                 provider: Provider, pipeline: Pipeline, channel: EventChannel, buffer_s: float) -> None:
        self.id = session_id
        self.start = start
        self.transport = transport
        self.api_key = api_key
        self.provider = provider
        self.pipeline: Pipeline | None = pipeline
        self.channel = channel
        self.ring = RingBuffer(int(buffer_s * HUB_RATE))
        self.stream: ProviderStream | None = None
        self.created = time.monotonic()
        self.last_activity = self.created
        self.ended = False
        self.stopping = False
        self.utterance_index = 0
        self.open_utterance: tuple[str, int] | None = None   # (id, audio start)
        self.pending: dict[str, tuple[int, int]] = {}         # utterance id -> (start, end) awaiting final
        self.first_partial_due: dict[str, int] = {}           # utterance id -> speech onset, until its 1st partial
        self._arrivals: deque[tuple[int, float]] = deque(maxlen=512)  # (chunk end offset, arrival time)
        self.audio_bytes = 0
        self.partials = 0
        self.finals = 0
        self.tasks: set[Any] = set()

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
                if self.stream is not None:
                    self.stream.start_utterance(uid, item.audio_start)
                on_marker(item, uid)
            elif isinstance(item, PauseHint):
                if self.stream is not None and self.open_utterance is not None:
                    self.stream.pause_hint(self.open_utterance[0], item.offset)
            elif isinstance(item, SpeechEnd) and self.open_utterance is not None:
                uid, start = self.open_utterance
                self.open_utterance = None
                self.pending[uid] = (start, item.offset)
                on_marker(item, uid)
                if self.stream is not None:
                    self.stream.end_utterance(uid, item.offset)
        self._trim()

    def _trim(self) -> None:
        keep = self.ring.end - ms_to_samples(1000)
        if self.open_utterance is not None:
            keep = min(keep, self.open_utterance[1])
        for start, _ in self.pending.values():
            keep = min(keep, start)
        self.ring.trim(keep)

    # -- results -> events -------------------------------------------------------------------
    def partial_event(self, r: StreamResult) -> Event:
        self.partials += 1
        return TranscriptPartial(session_id=self.id, utterance_id=r.utterance_id, text=r.text,
                                 stable_text=r.stable_text, start_ms=samples_to_ms(r.start),
                                 end_ms=samples_to_ms(r.end))

    def final_event(self, r: StreamResult, provider: str) -> TranscriptFinal:
        self.finals += 1
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
                               language=r.language, provider=provider, latency_ms=max(0, int(latency)),
                               lag_ms=max(0, int(lag)),
                               recording=self.pipeline.recording_for(r.start, r.end) if self.pipeline else None)

    def stats(self) -> dict[str, Any]:
        return {"audio_ms": samples_to_ms(self.audio_samples), "utterances": self.utterance_index,
                "finals": self.finals, "partials": self.partials, "audio_bytes": self.audio_bytes,
                "duration_ms": int((time.monotonic() - self.created) * 1000)}

    def release(self) -> None:
        """Free the data plane once the session has ended (the channel stays for resume)."""
        if self.pipeline is not None:
            self.pipeline.release()  # closes recordings, returns the wake word decoder
        self.pipeline = None
        self.ring = RingBuffer(1)
        self.stream = None
        self._arrivals.clear()
