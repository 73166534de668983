"""The hub's store: three slices, the transition guard and dispatch queue, the effects (routing by
detected language among them), and the event router registered last."""

from __future__ import annotations

from typing import Any

from pystorex import Store, create_store

from .hub.reducer import hub_reducer
from .middleware import DispatchQueue, TransitionGuard
from .ports import ChannelPort, FailoverPort, RoutingPort, StreamPort
from .providers.effects import FailoverEffects
from .providers.reducer import providers_reducer
from .router import RouterEffects
from .sessions.effects import SessionEffects
from .sessions.reducer import sessions_reducer
from .sessions.routing import RoutingEffects


def build_store(streams: StreamPort, failover: FailoverPort, channels: ChannelPort, *more_effects: Any,
                routing: RoutingPort | None = None) -> Store[Any]:
    store = create_store()
    store.register_root({"sessions": sessions_reducer, "providers": providers_reducer, "hub": hub_reducer})
    # before the effects: each effect subscription binds the store's dispatch as it is then
    store.apply_middleware(lambda s: DispatchQueue(s), lambda s: TransitionGuard(s))
    store.register_effects(SessionEffects(streams), FailoverEffects(failover), *more_effects)
    if routing is not None:
        store.register_effects(RoutingEffects(routing))
    store.register_effects(RouterEffects(channels))
    return store
