"""A session's event channel: gapless `seq`, bounded history for replay, awaitable by readers.

Readers wait on an asyncio.Event (no polling). A partial that no reader has taken yet is replaced in
place by the next partial of the same utterance (coalescing keeps `seq` gapless). Finals are never
dropped: when the history is full of events a reader has not taken, the reader is too slow and the
channel reports overflow, once: the session turns it into a fatal error and ends, and the error event
and `session.ended` that follow must go into the (full) history without raising again.

Cluster mode (DESIGN §8): a session's event log is one more reader (`log_batch`), apart from the
clients: it does not count as a client reading. The channel is then `gated`: clients see an event only
once the log has it (`commit`), so no client ever holds an event the cluster does not; a log that
refuses the session's next seq (another node declared this one lost) `fence`s the channel, and its
readers stop with ChannelFenced; a log that is unreachable `ungate`s it (the session goes on locally).
Clients reading through another node report how far they got (`mark_delivered`), so the cut-off for a
client that does not read still works.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import AsyncIterator

from .events import Event


class ChannelOverflow(Exception):
    pass


class ChannelFenced(Exception):
    """Another node owns what comes next of this session: the client should resume (anywhere)."""


class EventChannel:
    def __init__(self, session_id: str, max_events: int = 4096, *, gated: bool = False) -> None:
        self.session_id = session_id
        self._max = max_events
        self._history: deque[Event] = deque()
        self._next_seq = 1
        self._delivered = 0  # highest seq handed to any reader
        self._wake = asyncio.Event()
        self.closed = False  # no more events after the last one (session.ended)
        self.overflowed = False  # ChannelOverflow was raised (it is raised once)
        self.readers = 0
        self.remote_readers = 0  # clients attached through another node (cluster)
        self.gated = gated       # clients see only what the log has committed
        self.fenced = False      # the log refused this node's next seq: clients stop at `committed`
        self.committed = 0       # highest seq the log holds
        self._logged = 0         # highest seq handed to the log

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
                and tail.seq > self._delivered and tail.seq > self._logged
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
            if dropped.seq > self._delivered and (self.readers or self.remote_readers) and not self.overflowed:
                self.overflowed = overflow = True
        if event.type == "session.ended":
            self.closed = True
        self._wake.set()
        if overflow:  # the event is in the history all the same
            raise ChannelOverflow(f"client has not read {len(self._history)} events")
        return event

    @property
    def visible_seq(self) -> int:
        """The last seq a client may see now."""
        return self.committed if self.gated or self.fenced else self.last_seq

    def _after(self, cursor: int, upto: int | None = None) -> list[Event]:
        h = self._history
        top = self.last_seq if upto is None else upto
        if not h or top <= cursor:
            return []
        first = max(0, cursor + 1 - h[0].seq)  # seqs in the history are contiguous
        last = top - h[0].seq  # index of seq `top`
        return [h[i] for i in range(first, min(last + 1, len(h)))]

    # -- the cluster's event log (one more reader, not a client) ---------------------------------
    async def log_batch(self, cursor: int) -> list[Event]:
        """Every event after `cursor` (waiting for one); they stay as they are from now on."""
        while True:
            batch = self._after(cursor)
            if batch:
                self._logged = max(self._logged, batch[-1].seq)
                return batch
            self._wake.clear()
            await self._wake.wait()

    def commit(self, seq: int) -> None:
        if seq > self.committed:
            self.committed = seq
            self._wake.set()

    def ungate(self) -> None:
        """No log any more (Redis unreachable): clients see everything, as on a single node."""
        if self.gated and not self.fenced:
            self.gated = False
            self._wake.set()

    def fence(self) -> None:
        self.fenced = True
        self._wake.set()

    def mark_delivered(self, seq: int) -> None:
        """A client reading through another node has taken events up to `seq`."""
        self._delivered = max(self._delivered, min(seq, self.last_seq))

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
                batch = self._after(cursor, self.visible_seq)
                for ev in batch:
                    cursor = ev.seq
                    if cursor > self._delivered:
                        self._delivered = cursor
                    yield ev
                if self.closed and cursor >= self.last_seq:
                    return
                if self.fenced and cursor >= self.committed:
                    raise ChannelFenced(f"session {self.session_id} continues on another node")
                if not batch:
                    self._wake.clear()
                    await self._wake.wait()
        finally:
            self.readers -= 1
