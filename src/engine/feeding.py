"""The data plane reporting to the control plane: what a session's pipeline yields (wake words, speech
edges, utterance segments) goes to its stream, and each edge the client hears becomes an action; each
utterance's language ID is asked for when it is due (engine/routing.py)."""

from __future__ import annotations

from typing import Any, Protocol

from pystorex import Action

from ..core.audio import samples_to_ms
from ..core.events import Event, SpeechEnded, SpeechStarted, WakewordDetected
from ..operators.base import SpeechEnd, SpeechStart, WakeWord
from ..store.sessions import actions as A
from ..store.sessions.selectors import select_session
from .routing import LanguageRouting
from .session import Session


class FeedingHost(Protocol):
    """What feeding needs of the session service."""

    routing: LanguageRouting

    @property
    def state(self) -> Any: ...

    def dispatch(self, action: Action[Any]) -> None: ...

    def is_live(self, session_id: str) -> bool: ...

    def arm_final_timer(self, s: Session, uid: str) -> None: ...


class Feeding:
    def __init__(self, host: FeedingHost) -> None:
        self.host = host

    def feed(self, s: Session, items: list[Any]) -> None:
        """The pipeline's `items` (from a push, flush or close) into the session's stream, as actions."""
        host = self.host

        def marker(item: SpeechStart | SpeechEnd, uid: str) -> None:
            if isinstance(item, SpeechStart):
                ev: Event = SpeechStarted(session_id=s.id, offset_ms=samples_to_ms(item.offset))
                host.dispatch(A.speech_edge(A.SpeechEdge(s.id, ev, True, uid)))
                rec = select_session(host.state, s.id)
                due = host.routing.due_at_start(s, rec, uid, item.offset) if rec is not None else None
                if due is not None:
                    host.dispatch(due)
            else:
                host.arm_final_timer(s, uid)
                ev = SpeechEnded(session_id=s.id, offset_ms=samples_to_ms(item.offset), reason=item.reason,
                                 turn_probability=None if item.turn_probability is None
                                 else round(item.turn_probability, 4))
                host.dispatch(A.speech_edge(A.SpeechEdge(s.id, ev, False, uid)))
                self.request_detection(s, (uid, s.pending[uid][0], item.offset) if uid in s.pending else None)

        for item in items:
            if isinstance(item, WakeWord):  # ahead of the utterance it opens
                ev = WakewordDetected(session_id=s.id, phrase=item.phrase, offset_ms=samples_to_ms(item.offset))
                host.dispatch(A.wakeword_detected(A.WakewordDetected(s.id, ev)))
        s.feed(items, marker)
        self.request_detection(s)

    def feed_late(self, s: Session, items: list[Any]) -> None:
        """Markers the pipeline decided outside a push (the turn model answered), while the session is live: a
        `stop` waits for them before it closes the pipeline (engine/stopping.py close_after)."""
        if s.pipeline is not None and self.host.is_live(s.id):
            self.feed(s, items)

    def request_detection(self, s: Session, ended: tuple[str, int, int] | None = None) -> None:
        """The due utterance's language ID, once it has enough audio or has `ended` (id, start, end): asked
        before the stream is told the utterance ended, so its final is held for the answer."""
        rec = select_session(self.host.state, s.id)
        action = self.host.routing.request(s, rec, ended) if rec is not None and rec.detect_due is not None else None
        if action is not None:
            self.host.dispatch(action)
