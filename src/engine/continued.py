"""The event channel of a session this node took over from a dead one (DESIGN §8 "Owner death →
takeover").

Its seqs go on after the log's: the claim appended `session.migrated` at the next seq, which this channel
holds, after the newest events of the log before it (`tail`: so a client that missed some resumes here),
already committed. The session's start (`session.started`, made as for any new
session) goes out as `session.started {resumed: true, migrated: true, audio_from_ms}`.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..core.channel import EventChannel
from ..core.events import Event, SessionMigrated, SessionStarted


class ContinuedChannel(EventChannel):
    def __init__(self, migrated: SessionMigrated, max_events: int, tail: Sequence[Event] = ()) -> None:
        super().__init__(migrated.session_id, max_events, gated=True)
        self.migrated = migrated
        seqs = [e.seq for e in tail]
        if seqs == list(range(migrated.seq - len(tail), migrated.seq)):  # contiguous up to the claim
            self._history.extend(tail[-max_events // 2:])
        self._history.append(migrated)
        self._next_seq = migrated.seq + 1
        self.committed = self._logged = migrated.seq   # the claim put it in the log
        self._restarted = False

    def emit(self, event: Event) -> Event:
        if isinstance(event, SessionStarted) and not self._restarted:
            self._restarted = True
            event = event.model_copy(update={"resumed": True, "migrated": True,
                                             "audio_from_ms": self.migrated.audio_from_ms})
        return super().emit(event)
