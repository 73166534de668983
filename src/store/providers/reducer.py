"""Providers slice: status, active sessions and error counts per provider."""

from __future__ import annotations

from dataclasses import dataclass, replace

from immutables import Map
from pystorex import Action, create_reducer, on

from . import actions as A


@dataclass(frozen=True)
class ProviderRecord:
    name: str
    status: str = "loading"
    reason: str | None = None
    active_sessions: int = 0
    errors: int = 0
    last_error: str | None = None


def _get(state: Map, name: str) -> ProviderRecord:
    return state.get(name) or ProviderRecord(name)  # type: ignore[no-any-return]


def _status(state: Map, action: Action[A.StatusChanged]) -> Map:
    p = action.payload
    assert p is not None
    return state.set(p.name, replace(_get(state, p.name), status=p.status, reason=p.reason))


def _streams(delta: int):  # noqa: ANN202
    def handler(state: Map, action: Action[A.StreamRef]) -> Map:
        p = action.payload
        assert p is not None
        rec = _get(state, p.name)
        return state.set(p.name, replace(rec, active_sessions=max(0, rec.active_sessions + delta)))
    return handler


def _failed(state: Map, action: Action[A.Failed]) -> Map:
    p = action.payload
    assert p is not None
    rec = _get(state, p.name)
    return state.set(p.name, replace(rec, errors=rec.errors + 1, last_error=p.message))


providers_reducer = create_reducer(
    Map(),
    on(A.status_changed.type, _status),
    on(A.stream_opened.type, _streams(+1)),
    on(A.stream_closed.type, _streams(-1)),
    on(A.failed.type, _failed),
)
