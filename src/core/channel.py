"""A session's event channel: gapless `seq`, bounded history for replay, awaitable by readers.

Readers wait on an asyncio.Event (no polling). A partial that no reader has taken yet is replaced in
place by the next partial of the same utterance (coalescing keeps `seq` gapless). Finals are never
dropped: when the history is full of events a reader has not taken, the reader is too slow and the
channel reports overflow, once: the session turns it into a fatal error and ends, and the error event
and `session.ended` that follow must go into the (full) history without raising again.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import AsyncIterator

from .events import Event


class ChannelOverflow(Exception):
    pass


class EventChannel:
    def __init__(self, session_id: str, max_events: int = 4096) -> None:
        self.session_id = session_id
        self._max = max_events
        self._history: deque[Event] = deque()
        self._next_seq = 1
        self._delivered = 0  # highest seq handed to any reader
        self._wake = asyncio.Event()
        self.closed = False  # no more events after the last one (session.ended)
        self.overflowed = False  # ChannelOverflow was raised (it is raised once)
        self.readers = 0

    @property
    def last_seq(self) -> int:
        return self._next_seq - 1

    def emit(self, event: Event) -> Event:
        """Number a copy of `event` (the caller's stays as it is) and append it."""
        if self.closed:
            return event
        event = event.model_copy()
        tail = self._history[-1] if self._history else None
        if (event.type == "transcript.partial" and tail is not None and tail.type == "transcript.partial"
                and tail.seq > self._delivered
                and getattr(tail, "utterance_id", None) == getattr(event, "utterance_id", None)):
            event.seq, event.ts = tail.seq, time.time()
            event.session_id = self.session_id
            self._history[-1] = event
            self._wake.set()
            return event
        event.seq = self._next_seq
        event.session_id = self.session_id
        if not event.ts:
            event.ts = time.time()
        self._next_seq += 1
        self._history.append(event)
        overflow = False
        if len(self._history) > self._max:
            dropped = self._history.popleft()
            if dropped.seq > self._delivered and self.readers and not self.overflowed:
                self.overflowed = overflow = True
        if event.type == "session.ended":
            self.closed = True
        self._wake.set()
        if overflow:  # the event is in the history all the same
            raise ChannelOverflow(f"client has not read {len(self._history)} events")
        return event

    def _after(self, cursor: int) -> list[Event]:
        h = self._history
        if not h or h[-1].seq <= cursor:
            return []
        first = max(0, cursor + 1 - h[0].seq)  # seqs in the history are contiguous
        return [h[i] for i in range(first, len(h))]

    def replay_from(self, after_seq: int) -> list[Event]:
        return self._after(after_seq)

    def can_replay(self, after_seq: int) -> bool:
        return not self._history or self._history[0].seq <= after_seq + 1

    async def subscribe(self, after_seq: int = 0) -> AsyncIterator[Event]:
        """Yield every event with seq > after_seq, then wait for more; ends after session.ended."""
        cursor = after_seq
        self.readers += 1
        try:
            while True:
                batch = self._after(cursor)
                for ev in batch:
                    cursor = ev.seq
                    if cursor > self._delivered:
                        self._delivered = cursor
                    yield ev
                if self.closed and cursor >= self.last_seq:
                    return
                if not batch:
                    self._wake.clear()
                    await self._wake.wait()
        finally:
            self.readers -= 1
