"""Sessions slice: the DESIGN §2.1 state machine. Pure: same state + action -> same state."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from immutables import Map
from pystorex import Action, create_reducer, on

from . import actions as A

# created -> listening <-> speaking ; listening/speaking -> finalizing -> ended ; any -> ended
TRANSITIONS: dict[str, frozenset[str]] = {
    "created": frozenset({"listening", "ended"}),
    "listening": frozenset({"speaking", "finalizing", "ended"}),
    "speaking": frozenset({"listening", "finalizing", "ended"}),
    "finalizing": frozenset({"ended"}),
    "ended": frozenset(),
}


@dataclass(frozen=True)
class SessionRecord:
    id: str
    state: str
    provider: str
    transport: str
    api_key: str | None
    created_at: float
    attached: bool = True
    utterances: int = 0
    finals: int = 0
    errors: int = 0
    switches: int = 0
    audio_ms: int = 0
    end_reason: str | None = None


def _move(state: Map, session_id: str, to: str, **changes: Any) -> Map:
    rec: SessionRecord | None = state.get(session_id)
    if rec is None:
        return state
    if to != rec.state and to not in TRANSITIONS[rec.state]:
        return state  # illegal transition: ignored, the record stays consistent
    return state.set(session_id, replace(rec, state=to, **changes))


def _update(state: Map, session_id: str, **changes: Any) -> Map:
    rec = state.get(session_id)
    return state if rec is None else state.set(session_id, replace(rec, **changes))


def _created(state: Map, action: Action[A.Created]) -> Map:
    p = action.payload
    assert p is not None
    return state.set(p.session_id, SessionRecord(p.session_id, "created", p.provider, p.transport, p.api_key, p.at))


def _speech(state: Map, action: Action[A.SpeechEdge]) -> Map:
    p = action.payload
    assert p is not None
    rec = state.get(p.session_id)
    if rec is None or rec.state not in ("listening", "speaking"):
        return state
    if p.speaking:
        return _move(state, p.session_id, "speaking", utterances=rec.utterances + 1)
    return _move(state, p.session_id, "listening")


def _final(state: Map, action: Action[A.FinalEmitted]) -> Map:
    p = action.payload
    assert p is not None
    rec = state.get(p.session_id)
    return state if rec is None else _update(state, p.session_id, finals=rec.finals + 1,
                                             audio_ms=max(rec.audio_ms, p.audio_ms))


def _error(state: Map, action: Action[A.ErrorRaised]) -> Map:
    p = action.payload
    assert p is not None
    rec = state.get(p.session_id)
    return state if rec is None else _update(state, p.session_id, errors=rec.errors + 1)


def _switched(state: Map, action: Action[A.ProviderSwitched]) -> Map:
    p = action.payload
    assert p is not None
    rec = state.get(p.session_id)
    return state if rec is None else _update(state, p.session_id, provider=p.to, switches=rec.switches + 1)


def _ended(state: Map, action: Action[A.Ended]) -> Map:
    p = action.payload
    assert p is not None
    rec = state.get(p.session_id)
    if rec is None:
        return state
    audio_ms = int(p.stats.get("audio_ms", rec.audio_ms)) if isinstance(p.stats, dict) else rec.audio_ms
    return _move(state, p.session_id, "ended", end_reason=p.reason, audio_ms=audio_ms)


def _attached(value: bool):  # noqa: ANN202
    def handler(state: Map, action: Action[A.SessionRef]) -> Map:
        assert action.payload is not None
        return _update(state, action.payload.session_id, attached=value)
    return handler


sessions_reducer = create_reducer(
    Map(),
    on(A.created.type, _created),
    on(A.started.type, lambda s, a: _move(s, a.payload.session_id, "listening", provider=a.payload.provider)),
    on(A.speech_edge.type, _speech),
    on(A.final_emitted.type, _final),
    on(A.error_raised.type, _error),
    on(A.provider_switched.type, _switched),
    on(A.stop_requested.type, lambda s, a: _move(s, a.payload.session_id, "finalizing")),
    on(A.ended.type, _ended),
    on(A.detached.type, _attached(False)),
    on(A.attached.type, _attached(True)),
    on(A.removed.type, lambda s, a: s.delete(a.payload.session_id) if a.payload.session_id in s else s),
)
