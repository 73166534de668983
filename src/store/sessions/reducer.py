"""Sessions slice: the DESIGN §2.1 state machine. Pure: same state + action -> same state.

The reducer is the authority on a session's lifecycle: commands are gated by selectors over it. An
action the state machine does not allow never reaches it: the transition guard (store/guard.py)
turns it into `[Session] Illegal Transition`, which an effect logs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from immutables import Map
from pystorex import Action, create_reducer, on

from . import actions as A
from .state import SessionRecord, SessionState

S = SessionState


def _update(sessions: Map, session_id: str, **changes: Any) -> Map:
    rec = sessions.get(session_id)
    return sessions if rec is None else sessions.set(session_id, rec.changed(**changes))


Change = Callable[[SessionRecord, Any], SessionRecord | None]


def _on_record(change: Change) -> Callable[[Map, Action[Any]], Map]:
    """A handler that applies `change(record, payload)` to the action's session: its new record, or None
    for no change (an action for a session the slice does not hold changes nothing)."""
    def handler(state: Map, action: Action[Any]) -> Map:
        p = action.payload
        rec = state.get(p.session_id)
        new = None if rec is None else change(rec, p)
        return state if new is None else state.set(new.id, new)
    return handler


def _count(field: str) -> Change:
    """Adds one to the session's stats counter `field`."""
    return lambda rec, p: rec.changed(stats=rec.stats.model_copy(update={field: getattr(rec.stats, field) + 1}))


def _created(state: Map, action: Action[A.Created]) -> Map:
    p = action.payload
    assert p is not None
    return state.set(p.session_id, SessionRecord(p.session_id, S.created, p.provider, p.transport, p.api_key, p.at,
                                                 detect=p.detect))


def _detect_due(rec: SessionRecord, p: A.DetectDue) -> SessionRecord | None:
    return rec.changed(detect_due=p.utterance_id, detect_s=p.seconds) if rec.detect else None


def _detect_requested(rec: SessionRecord, p: A.DetectRequested) -> SessionRecord:
    return rec.changed(detecting=p.utterance_id,
                   detect_due=None if rec.detect_due == p.utterance_id else rec.detect_due)


def _language_detected(rec: SessionRecord, p: A.LanguageDetected) -> SessionRecord:
    detecting = None if rec.detecting == p.utterance_id else rec.detecting
    if p.language is None:
        return rec.changed(detecting=detecting)
    return rec.changed(detecting=detecting, language=p.language, language_probability=p.probability)


def _speech(rec: SessionRecord, p: A.SpeechEdge) -> SessionRecord | None:
    if rec.state == S.finalizing:  # audio received before `stop`, decided after it: an edge, not a transition
        if p.speaking:
            return rec.changed(stats=rec.stats.model_copy(update={"utterances": rec.stats.utterances + 1}))
        return None
    if p.speaking:
        return rec.changed(state=S.speaking, stats=rec.stats.model_copy(update={"utterances": rec.stats.utterances + 1}))
    return rec.changed(state=S.listening)


def _moved(rec: SessionRecord, p: A.ProviderSwitched | A.LanguageRouted) -> SessionRecord:
    """The session's provider is now `to` (failover, or routing by language): the one place that says so."""
    return rec.changed(provider=p.to)


def _detached(rec: SessionRecord, p: A.Detached) -> SessionRecord | None:
    if rec.attachment != p.attachment:
        return None  # a connection that a resume has replaced already
    return rec.changed(attached=False)


sessions_reducer = create_reducer(
    Map(),
    on(A.created.type, _created),
    on(A.started.type, lambda s, a: _update(s, a.payload.session_id, state=S.listening)),
    on(A.speech_edge.type, _on_record(_speech)),
    on(A.partial_emitted.type, _on_record(_count("partials"))),
    on(A.final_emitted.type, _on_record(_count("finals"))),
    on(A.provider_switched.type, _on_record(_moved)),
    on(A.stop_requested.type, lambda s, a: _update(s, a.payload.session_id, state=S.finalizing)),
    on(A.ended.type, lambda s, a: _update(s, a.payload.session_id, state=S.ended)),
    on(A.detached.type, _on_record(_detached)),
    on(A.attached.type, _on_record(lambda rec, p: rec.changed(attached=True, attachment=rec.attachment + 1))),
    on(A.detect_due.type, _on_record(_detect_due)),
    on(A.detect_requested.type, _on_record(_detect_requested)),
    on(A.language_detected.type, _on_record(_language_detected)),
    on(A.language_routed.type, _on_record(_moved)),
    on(A.removed.type, lambda s, a: s.delete(a.payload.session_id) if a.payload.session_id in s else s),
)
