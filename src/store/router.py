"""The event router: the one subscription that puts every event in its session's channel, by session
id (O(1)), whatever action carries it. Registered after every other effect, so a session's state has
been reduced and its other effects have run before its event goes out."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pystorex import Action, create_effect
from reactivex import Observable
from reactivex import operators as ops

from .base import EventPayload, guarded
from .ports import ChannelPort


class RouterEffects:
    def __init__(self, channels: ChannelPort) -> None:
        self.channels = channels

    @create_effect
    def route_events(self, actions: Observable[Action[Any]]) -> Observable[Action[Any]]:
        def run(a: Action[Any]) -> Sequence[Action[Any]]:
            return self.channels.deliver(a.payload)  # an error on delivery: the actions that report it

        return actions.pipe(
            ops.filter(lambda a: isinstance(a, Action) and isinstance(a.payload, EventPayload)),
            guarded("route_events", run, lambda a, e: ()),
        )
