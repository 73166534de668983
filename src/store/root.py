"""The hub's store: three slices and the session effects."""

from __future__ import annotations

from typing import Any

from pystorex import Store, create_store

from .hub.reducer import hub_reducer
from .providers.reducer import providers_reducer
from .sessions.effects import SessionEffects, SessionRuntime
from .sessions.reducer import sessions_reducer


def build_store(runtime: SessionRuntime, *more_effects: Any) -> Store[Any]:
    store = create_store()
    store.register_root({"sessions": sessions_reducer, "providers": providers_reducer, "hub": hub_reducer})
    store.register_effects(SessionEffects(runtime), *more_effects)
    return store
