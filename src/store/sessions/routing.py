"""Routing by detected language as effects (DESIGN §5): `[Session] Language Detection Requested` runs the
language ID behind the RoutingPort (model work that completes later) and its answer, `[Session] Language
Detected`, is reduced first and then routed: the port moves the session or releases the finals that waited."""

from __future__ import annotations

from typing import Any

from pystorex import Action, create_effect
from reactivex import Observable

from ..base import guarded, guarded_async, of_type
from ..ports import RoutingPort
from . import actions as A


class RoutingEffects:
    def __init__(self, routing: RoutingPort) -> None:
        self.port = routing

    @create_effect
    def detect(self, actions: Observable[Action[Any]]) -> Observable[Action[Any]]:
        def start(a: Action[A.DetectRequested]) -> Any:
            p = a.payload
            assert p is not None
            return self.port.detect(p.session_id, p.utterance_id, p.start, p.end)

        return actions.pipe(of_type(A.detect_requested), guarded_async("routing.detect", start))

    @create_effect
    def route(self, actions: Observable[Action[Any]]) -> Observable[Action[Any]]:
        return actions.pipe(
            of_type(A.language_detected),
            guarded("routing.route", lambda a: self.port.route(a.payload.session_id, a.payload.utterance_id,
                                                               a.payload.language, a.payload.probability),
                    lambda a, e: ()),
        )
