"""Session effects: open/close provider streams, route events, reap idle and failed sessions.

Every effect maps items through `guarded`, so one session's exception becomes that session's error
action and the effect keeps serving every other session.
"""

from __future__ import annotations

from typing import Any, Protocol

from pystorex import Action, create_effect
from reactivex import Observable
from reactivex import operators as ops

from ..base import EventPayload, guarded, of_type
from . import actions as A


class SessionRuntime(Protocol):
    """What the effects need from the session service."""

    def open_stream(self, session_id: str) -> Action[Any]: ...

    def close_stream(self, session_id: str) -> Action[Any] | None: ...

    def end(self, session_id: str, reason: str) -> None: ...

    def deliver(self, payload: EventPayload) -> None: ...

    def failure(self, session_id: str, error: Exception) -> Action[Any] | None: ...


class SessionEffects:
    def __init__(self, runtime: SessionRuntime) -> None:
        self.rt = runtime

    @create_effect
    def open_stream(self, actions: Observable[Action[Any]]) -> Observable[Action[Any]]:
        return actions.pipe(
            of_type(A.created),
            guarded("open_stream", lambda a: self.rt.open_stream(a.payload.session_id),
                    lambda a, e: self.rt.failure(a.payload.session_id, e)),
        )

    @create_effect
    def close_stream(self, actions: Observable[Action[Any]]) -> Observable[Action[Any]]:
        return actions.pipe(
            of_type(A.ended),
            guarded("close_stream", lambda a: self.rt.close_stream(a.payload.session_id), lambda a, e: None),
        )

    @create_effect
    def end_on_fatal_error(self, actions: Observable[Action[Any]]) -> Observable[Action[Any]]:
        def fatal(a: Action[A.ErrorRaised]) -> bool:
            return a.payload is not None and a.payload.fatal

        def end(a: Action[A.ErrorRaised]) -> Action[A.EndRequested]:
            assert a.payload is not None
            # deliver the error before session.ended closes the channel (route_events runs after this
            # effect and skips an event that already has its seq)
            self.rt.deliver(a.payload)
            return A.end_requested(A.EndRequested(a.payload.session_id, "error"))

        return actions.pipe(of_type(A.error_raised), ops.filter(fatal), ops.map(end))

    @create_effect
    def end_idle(self, actions: Observable[Action[Any]]) -> Observable[Action[Any]]:
        def end(a: Action[A.SessionRef]) -> Action[A.EndRequested]:
            assert a.payload is not None
            return A.end_requested(A.EndRequested(a.payload.session_id, "idle"))

        return actions.pipe(of_type(A.idle_detected), ops.map(end))

    @create_effect(dispatch=False)
    def end(self, actions: Observable[Action[Any]]) -> Observable[Any]:
        def run(a: Action[A.EndRequested]) -> None:
            assert a.payload is not None
            self.rt.end(a.payload.session_id, a.payload.reason)
            return None

        return actions.pipe(of_type(A.end_requested), guarded("end", run, lambda a, e: None))

    @create_effect(dispatch=False)
    def route_events(self, actions: Observable[Action[Any]]) -> Observable[Any]:
        """The one subscription that fans events out to sessions, by session id (O(1))."""

        def run(a: Action[Any]) -> None:
            self.rt.deliver(a.payload)
            return None

        return actions.pipe(
            ops.filter(lambda a: isinstance(a, Action) and isinstance(a.payload, EventPayload)),
            guarded("route_events", run, lambda a, e: None),
        )
