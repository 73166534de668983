"""Session effects: open/close provider streams, end sessions (fatal error, idle, request), log
illegal transitions. The event router is its own effects class, registered last (store/router.py).

Every effect maps items through `guarded`, so one session's exception becomes that session's error
action and the effect keeps serving every other session. Effects return actions; the store's dispatch
queue runs them after the current action (no effect dispatches from inside another).
"""

from __future__ import annotations

import logging
from typing import Any

from pystorex import Action, create_effect
from reactivex import Observable

from ...core.errors import ErrorCode, HubError
from ...core.events import ErrorEvent
from ..base import guarded, of_type
from ..ports import Actions, StreamPort
from . import actions as A

log = logging.getLogger(__name__)


def fatal_error(session_id: str, error: Exception) -> Actions:
    """The action that ends a session on an unexpected failure of its own (never touching the
    exception it was given)."""
    err = error if isinstance(error, HubError) else HubError(ErrorCode.internal, f"internal error: {error}")
    ev = ErrorEvent(session_id=session_id, code=err.code.value, message=err.message, fatal=True)
    return [A.error_raised(A.ErrorRaised(session_id, ev, err.code.value, True))]


class SessionEffects:
    def __init__(self, streams: StreamPort) -> None:
        self.streams = streams

    @create_effect
    def open_stream(self, actions: Observable[Action[Any]]) -> Observable[Action[Any]]:
        return actions.pipe(
            of_type(A.created),
            guarded("open_stream", lambda a: self.streams.open_stream(a.payload.session_id),
                    lambda a, e: fatal_error(a.payload.session_id, e)),
        )

    @create_effect
    def close_stream(self, actions: Observable[Action[Any]]) -> Observable[Action[Any]]:
        return actions.pipe(
            of_type(A.ended),
            guarded("close_stream", lambda a: self.streams.close_stream(a.payload.session_id), lambda a, e: ()),
        )

    @create_effect
    def end_on_fatal_error(self, actions: Observable[Action[Any]]) -> Observable[Action[Any]]:
        def end(a: Action[A.ErrorRaised]) -> Actions:
            assert a.payload is not None
            return [A.end_requested(A.EndRequested(a.payload.session_id, "error"))] if a.payload.fatal else ()

        return actions.pipe(of_type(A.error_raised), guarded("end_on_fatal_error", end, lambda a, e: ()))

    @create_effect
    def end_idle(self, actions: Observable[Action[Any]]) -> Observable[Action[Any]]:
        def end(a: Action[A.SessionRef]) -> Actions:
            assert a.payload is not None
            return [A.end_requested(A.EndRequested(a.payload.session_id, "idle"))]

        return actions.pipe(of_type(A.idle_detected), guarded("end_idle", end, lambda a, e: ()))

    @create_effect
    def end(self, actions: Observable[Action[Any]]) -> Observable[Action[Any]]:
        return actions.pipe(
            of_type(A.end_requested),
            guarded("end", lambda a: self.streams.end_session(a.payload.session_id, a.payload.reason),
                    lambda a, e: ()),
        )

    @create_effect(dispatch=False)
    def log_illegal(self, actions: Observable[Action[Any]]) -> Observable[Any]:
        def warn(a: Action[A.IllegalTransition]) -> Actions:
            p = a.payload
            assert p is not None
            log.warning("session %s: %s is not allowed in state %s; ignored", p.session_id, p.action_type, p.state)
            return ()

        return actions.pipe(of_type(A.illegal_transition), guarded("log_illegal", warn, lambda a, e: ()))
