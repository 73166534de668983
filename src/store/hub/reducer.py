"""Hub slice: is the hub ready, is it draining."""

from __future__ import annotations

from immutables import Map
from pystorex import create_reducer, on

from . import actions as A

hub_reducer = create_reducer(
    Map({"ready": False, "draining": False}),
    on(A.ready_changed.type, lambda s, a: s.set("ready", a.payload.value)),
    on(A.draining_started.type, lambda s, a: s.set("draining", True).set("ready", False)),
)
