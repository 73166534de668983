"""Sessions slice: the DESIGN §2.1 state machine. Pure: same state + action -> same state.

The reducer is the authority on a session's lifecycle: commands are gated by selectors over it. An
action the state machine does not allow never reaches it: the transition guard (store/guard.py)
turns it into `[Session] Illegal Transition`, which an effect logs.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from immutables import Map
from pystorex import Action, create_reducer, on

from . import actions as A
from .state import SessionRecord, SessionState

S = SessionState


def _update(sessions: Map, session_id: str, **changes: Any) -> Map:
    rec = sessions.get(session_id)
    return sessions if rec is None else sessions.set(session_id, replace(rec, **changes))


def _count(field: str):  # noqa: ANN202
    """A handler that adds one to the session's stats counter `field`."""
    def handler(state: Map, action: Action[Any]) -> Map:
        rec = state.get(action.payload.session_id)
        if rec is None:
            return state
        return state.set(rec.id, replace(rec, stats=rec.stats.model_copy(update={field: getattr(rec.stats, field) + 1})))
    return handler


def _created(state: Map, action: Action[A.Created]) -> Map:
    p = action.payload
    assert p is not None
    return state.set(p.session_id, SessionRecord(p.session_id, S.created, p.provider, p.transport, p.api_key, p.at,
                                                 detect=p.detect))


def _detect_due(state: Map, action: Action[A.DetectDue]) -> Map:
    p = action.payload
    assert p is not None
    rec = state.get(p.session_id)
    return state if rec is None or not rec.detect else _update(state, p.session_id, detect_due=p.utterance_id,
                                                               detect_s=p.seconds)


def _detect_requested(state: Map, action: Action[A.DetectRequested]) -> Map:
    p = action.payload
    assert p is not None
    rec = state.get(p.session_id)
    if rec is None:
        return state
    return _update(state, p.session_id, detecting=p.utterance_id,
                   detect_due=None if rec.detect_due == p.utterance_id else rec.detect_due)


def _language_detected(state: Map, action: Action[A.LanguageDetected]) -> Map:
    p = action.payload
    assert p is not None
    rec = state.get(p.session_id)
    if rec is None:
        return state
    detecting = None if rec.detecting == p.utterance_id else rec.detecting
    if p.language is None:
        return _update(state, p.session_id, detecting=detecting)
    return _update(state, p.session_id, detecting=detecting, language=p.language,
                   language_probability=p.probability)


def _started(state: Map, action: Action[A.Started]) -> Map:
    p = action.payload
    assert p is not None
    return _update(state, p.session_id, state=S.listening, provider=p.provider)


def _speech(state: Map, action: Action[A.SpeechEdge]) -> Map:
    p = action.payload
    assert p is not None
    rec: SessionRecord | None = state.get(p.session_id)
    if rec is None:
        return state
    if rec.state == S.finalizing:  # the open utterance closed by `stop`: an edge, not a transition
        return state
    if p.speaking:
        stats = rec.stats.model_copy(update={"utterances": rec.stats.utterances + 1})
        return state.set(rec.id, replace(rec, state=S.speaking, stats=stats))
    return state.set(rec.id, replace(rec, state=S.listening))


def _moved(state: Map, action: Action[A.ProviderSwitched] | Action[A.LanguageRouted]) -> Map:
    """The session's provider is now `to` (failover, or routing by language): the one place that says so."""
    p = action.payload
    assert p is not None
    return _update(state, p.session_id, provider=p.to)


def _attached(state: Map, action: Action[A.SessionRef]) -> Map:
    rec = state.get(action.payload.session_id)
    return state if rec is None else _update(state, rec.id, attached=True, attachment=rec.attachment + 1)


def _detached(state: Map, action: Action[A.Detached]) -> Map:
    p = action.payload
    assert p is not None
    rec = state.get(p.session_id)
    if rec is None or rec.attachment != p.attachment:
        return state  # a connection that a resume has replaced already
    return _update(state, rec.id, attached=False)


sessions_reducer = create_reducer(
    Map(),
    on(A.created.type, _created),
    on(A.started.type, _started),
    on(A.speech_edge.type, _speech),
    on(A.partial_emitted.type, _count("partials")),
    on(A.final_emitted.type, _count("finals")),
    on(A.provider_switched.type, _moved),
    on(A.stop_requested.type, lambda s, a: _update(s, a.payload.session_id, state=S.finalizing)),
    on(A.ended.type, lambda s, a: _update(s, a.payload.session_id, state=S.ended)),
    on(A.detached.type, _detached),
    on(A.attached.type, _attached),
    on(A.detect_due.type, _detect_due),
    on(A.detect_requested.type, _detect_requested),
    on(A.language_detected.type, _language_detected),
    on(A.language_routed.type, _moved),
    on(A.removed.type, lambda s, a: s.delete(a.payload.session_id) if a.payload.session_id in s else s),
)
