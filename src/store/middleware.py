"""Two store middlewares: the transition guard and the dispatch queue.

- `TransitionGuard`: before a session action reaches the reducers, check it against the state
  machine (DESIGN §2.1). An action that is not allowed from the session's state (an event after
  `session.ended`, a second `stop`, ...) is replaced by `[Session] Illegal Transition`, which an
  effect logs: nothing is dropped silently.
- `DispatchQueue`: a dispatch made while another is being processed (an effect's output action, or
  I/O an effect ran that reports back) is queued and runs once the current action has reached every
  reducer and effect. So no effect ever dispatches synchronously from inside another, and every
  subscriber sees actions in one order (the router delivers an error before the `session.ended` its
  effect asks for). A top-level `dispatch` returns once the queue is empty.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable
from typing import Any

from pystorex import Action

from .base import EventPayload
from .sessions import actions as A
from .sessions.state import SessionState, allowed

log = logging.getLogger(__name__)

Dispatch = Callable[[Any], Any]
S = SessionState


def _target(action: Action[Any], current: SessionState) -> SessionState | None:
    """The state `action` moves a session in `current` to (None: it is not a lifecycle action)."""
    t = action.type
    if t == A.started.type:
        return S.listening
    if t == A.stop_requested.type:
        return S.finalizing
    if t == A.ended.type:
        return S.ended
    if t == A.speech_edge.type:
        if current == S.finalizing:
            # audio received before `stop` is still decided after it (`stop` closed the open utterance; in
            # turn mode the frames that waited for the model's answer may open one more): an event, not a
            # transition. No audio is taken after `stop`, so no edge here comes from later audio.
            return None
        return S.speaking if action.payload.speaking else S.listening
    return None


class TransitionGuard:
    def __init__(self, store: Any) -> None:
        self.store = store

    def __call__(self, next_dispatch: Dispatch) -> Dispatch:
        def dispatch(action: Any) -> Any:
            if isinstance(action, Action) and action.type != A.created.type:
                sid = getattr(action.payload, "session_id", None)
                rec = self.store.state["sessions"].get(sid) if isinstance(sid, str) else None
                if rec is not None and not self._allowed(action, rec.state):
                    return next_dispatch(A.illegal_transition(A.IllegalTransition(rec.id, rec.state.value,
                                                                                  action.type)))
            return next_dispatch(action)
        return dispatch

    @staticmethod
    def _allowed(action: Action[Any], current: SessionState) -> bool:
        if current == S.ended and isinstance(action.payload, EventPayload):
            return False  # nothing follows session.ended
        to = _target(action, current)
        return to is None or allowed(current, to)


class DispatchQueue:
    def __init__(self, store: Any) -> None:
        self.store = store
        self._queue: deque[Any] = deque()
        self._busy = False

    def __call__(self, next_dispatch: Dispatch) -> Dispatch:
        def dispatch(action: Any) -> Any:
            if self._busy:
                self._queue.append(action)
                return action
            self._busy = True
            try:
                return next_dispatch(action)
            finally:
                while self._queue:
                    queued = self._queue.popleft()
                    try:
                        next_dispatch(queued)
                    except Exception:  # one bad action must not lose the ones queued behind it
                        log.exception("dispatch of %s failed", getattr(queued, "type", queued))
                self._busy = False
        return dispatch
