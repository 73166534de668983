"""The session state machine (DESIGN §2.1) and the record the sessions slice keeps per session."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from enum import StrEnum
from typing import Any

from ...core.events import SessionStats


class SessionState(StrEnum):
    created = "created"
    listening = "listening"
    speaking = "speaking"
    finalizing = "finalizing"
    ended = "ended"


S = SessionState

# created -> listening <-> speaking ; listening/speaking -> finalizing -> ended ; any -> ended
TRANSITIONS: dict[SessionState, frozenset[SessionState]] = {
    S.created: frozenset({S.listening, S.ended}),
    S.listening: frozenset({S.speaking, S.finalizing, S.ended}),
    S.speaking: frozenset({S.listening, S.finalizing, S.ended}),
    S.finalizing: frozenset({S.ended}),
    S.ended: frozenset(),
}

#: States in which a session takes audio, flush and stop.
OPEN = frozenset({S.listening, S.speaking})


def allowed(frm: SessionState, to: SessionState) -> bool:
    return to in TRANSITIONS[frm]


@dataclass(frozen=True)
class SessionRecord:
    id: str
    state: SessionState
    provider: str
    transport: str
    api_key: str | None
    created_at: float
    attached: bool = True
    attachment: int = 1          # which client connection is the session's: +1 on each resume
    # its `session.ended` stats as they accrue: the counters (utterances, partials, finals); what only the data
    # plane knows (audio, bytes) and the duration and detected language are put in when it ends
    stats: SessionStats = field(default_factory=SessionStats)
    # routing by detected language (DESIGN §5): on for this session; the utterance whose language is to be
    # identified once it has enough audio (due) or is being identified (detecting); the last answer
    detect: bool = False
    detect_due: str | None = None
    detect_s: float = 0.0        # how much of the due (or in-flight) utterance the language ID hears
    detecting: str | None = None
    language: str | None = None
    language_probability: float | None = None

    def changed(self, **changes: Any) -> SessionRecord:
        """This record with `changes`: `dataclasses.replace`, without running `__init__` again over every field
        (a few times faster; the reducer makes one per partial, on the store's hot path)."""
        if not _FIELDS.issuperset(changes):
            raise TypeError(f"SessionRecord has no field {sorted(set(changes) - _FIELDS)}")
        new = object.__new__(SessionRecord)
        new.__dict__.update(self.__dict__)
        new.__dict__.update(changes)
        return new

    def awaits_language(self, utterance_id: str) -> bool:
        """The utterance's language is not known yet: its final waits, its partials promise no stable text."""
        return utterance_id in (self.detect_due, self.detecting)

    @property
    def live(self) -> bool:
        return self.state != S.ended


_FIELDS = frozenset(f.name for f in fields(SessionRecord))
