"""Failover as effects (DESIGN §5): driven by `[Provider] Failed`, `[Provider] Status Changed` and
the `[Session] Final Timed Out` timer action; no polling. The moves themselves (a new stream, the
replay of the ring buffer) happen behind the FailoverPort."""

from __future__ import annotations

from typing import Any

from pystorex import Action, create_effect
from reactivex import Observable

from ..base import guarded, guarded_async, of_type
from ..ports import FailoverPort
from ..sessions import actions as SA
from . import actions as A
from .selectors import BAD


class FailoverEffects:
    def __init__(self, failover: FailoverPort) -> None:
        self.port = failover

    @create_effect
    def on_failed(self, actions: Observable[Action[Any]]) -> Observable[Action[Any]]:
        def run(a: Action[A.Failed]) -> Any:
            p = a.payload
            assert p is not None
            if p.session_id is None:
                return ()
            return self.port.provider_failed(p.session_id, p.utterance_id, p.name, p.message, p.timeout)

        return actions.pipe(of_type(A.failed), guarded("failover.on_failed", run, lambda a, e: ()))

    @create_effect
    def on_final_timeout(self, actions: Observable[Action[Any]]) -> Observable[Action[Any]]:
        return actions.pipe(
            of_type(SA.final_timed_out),
            guarded("failover.on_final_timeout",
                    lambda a: self.port.final_timed_out(a.payload.session_id, a.payload.utterance_id),
                    lambda a, e: ()),
        )

    @create_effect
    def on_down(self, actions: Observable[Action[Any]]) -> Observable[Action[Any]]:
        def down(a: Action[A.StatusChanged]) -> Any:
            p = a.payload
            assert p is not None
            if p.status not in BAD:
                return ()
            return self.port.provider_down(p.name, f"{p.status}: {p.reason or p.status}")

        return actions.pipe(of_type(A.status_changed), guarded("failover.on_down", down, lambda a, e: ()))

    @create_effect
    def probe(self, actions: Observable[Action[Any]]) -> Observable[Action[Any]]:
        def start(a: Action[A.StatusChanged]) -> Any:
            p = a.payload
            assert p is not None
            return self.port.probe(p.name) if p.status == "unhealthy" else None

        return actions.pipe(of_type(A.status_changed), guarded_async("failover.probe", start))
