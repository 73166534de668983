"""The store: pure reducers following the DESIGN §2.1 state machine; effects that survive failures."""

from __future__ import annotations

from typing import Any

from pystorex import Action

from asrhub.core.events import ErrorEvent, SessionStarted, SpeechStarted
from asrhub.store.base import EventPayload
from asrhub.store.root import build_store
from asrhub.store.sessions import actions as A
from asrhub.store.sessions.reducer import sessions_reducer
from asrhub.store.sessions.selectors import select_live_count, select_session


class Runtime:
    def __init__(self) -> None:
        self.delivered: list[tuple[str, str]] = []
        self.ended: list[tuple[str, str]] = []

    def open_stream(self, session_id: str) -> Action[Any]:
        if session_id.startswith("bad"):
            raise RuntimeError("provider exploded")
        ev = SessionStarted(session_id=session_id, provider="p", audio={}, config={})
        return A.started(A.Started(session_id, ev, "p"))

    def close_stream(self, session_id: str) -> None:
        return None

    def end(self, session_id: str, reason: str) -> None:
        self.ended.append((session_id, reason))

    def deliver(self, payload: EventPayload) -> None:
        self.delivered.append((payload.session_id, payload.event.type))

    def failure(self, session_id: str, error: Exception) -> Action[Any]:
        ev = ErrorEvent(session_id=session_id, code="internal", message=str(error), fatal=True)
        return A.error_raised(A.ErrorRaised(session_id, ev, "internal", True))


def test_reducer_is_pure_and_follows_the_state_machine() -> None:
    s0 = sessions_reducer(sessions_reducer.initial_state, A.created(A.Created("s1", "p", "websocket", None, 1.0)))
    s1 = sessions_reducer(s0, A.speech_edge(A.SpeechEdge("s1", SpeechStarted(session_id="s1", offset_ms=0), True)))
    assert s1["s1"].state == "created"  # speech before start is not a legal transition
    s2 = sessions_reducer(s0, A.started(A.Started("s1", SessionStarted(session_id="s1", provider="p", audio={},
                                                                          config={}), "p")))
    again = sessions_reducer(s0, A.started(A.Started("s1", SessionStarted(session_id="s1", provider="p", audio={},
                                                                             config={}), "p")))
    assert s2 == again and s0["s1"].state == "created"  # same input, same output; input untouched
    s3 = sessions_reducer(s2, A.speech_edge(A.SpeechEdge("s1", SpeechStarted(session_id="s1", offset_ms=0), True)))
    assert s3["s1"].state == "speaking" and s3["s1"].utterances == 1
    s4 = sessions_reducer(s3, A.stop_requested(A.SessionRef("s1")))
    assert s4["s1"].state == "finalizing"
    s5 = sessions_reducer(s4, A.removed(A.SessionRef("s1")))
    assert "s1" not in s5


def test_effect_failure_for_one_session_does_not_stop_the_others() -> None:
    rt = Runtime()
    store = build_store(rt)
    store.dispatch(A.created(A.Created("bad1", "p", "websocket", None, 1.0)))
    store.dispatch(A.created(A.Created("good1", "p", "websocket", None, 1.0)))
    store.dispatch(A.created(A.Created("bad2", "p", "websocket", None, 1.0)))
    store.dispatch(A.created(A.Created("good2", "p", "websocket", None, 1.0)))
    state = store.state
    assert select_session(state, "good1").state == "listening"
    assert select_session(state, "good2").state == "listening"
    assert ("bad1", "error") in rt.delivered and ("good2", "session.started") in rt.delivered
    assert ("bad1", "error") in rt.ended and ("bad2", "error") in rt.ended
    store.dispatch(A.idle_detected(A.SessionRef("good1")))
    assert ("good1", "idle") in rt.ended
    assert select_live_count(state) == 4
