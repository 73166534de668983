"""Providers slice: each provider's health (status and its reason). How many sessions a provider serves is the
sessions slice's to say (`select_live_on_provider`); what failed is logged where it fails."""

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


def _get(state: Map, name: str) -> ProviderRecord:
    return state.get(name) or ProviderRecord(name)  # type: ignore[no-any-return]


def _status(state: Map, action: Action[A.StatusChanged]) -> Map:
    p = action.payload
    assert p is not None
    return state.set(p.name, replace(_get(state, p.name), status=p.status, reason=p.reason))


providers_reducer = create_reducer(
    Map(),
    on(A.status_changed.type, _status),
)
