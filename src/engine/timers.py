"""A session's timers (ARCHITECTURE "Timers are events"): each is a loop timer that dispatches an action
when its deadline passes. They read time from the event loop, so the service runs on a virtual clock."""

from __future__ import annotations

import asyncio
from typing import Any, Protocol

from pystorex import Action

from ..core.config import HubConfig
from ..store.sessions import actions as A
from ..store.sessions.selectors import select_session
from ..store.sessions.state import SessionState
from .session import Session


class TimerHost(Protocol):
    config: HubConfig

    @property
    def state(self) -> Any: ...

    def dispatch(self, action: Action[Any]) -> None: ...


def arm_final_timer(host: TimerHost, s: Session, uid: str) -> None:
    """The utterance's final is due within providers.timeout_s; a timer reports it late
    (`[Session] Final Timed Out`)."""
    old = s.final_timers.pop(uid, None)
    if old is not None:
        old.cancel()
    s.final_timers[uid] = asyncio.get_running_loop().call_later(
        host.config.providers.timeout_s, host.dispatch, A.final_timed_out(A.UtteranceRef(s.id, uid)))


def arm_idle(host: TimerHost, s: Session) -> None:
    """`[Session] Idle Detected` once the open session has had no command for its idle timeout: one timer
    per session, re-armed for the next deadline when audio came meanwhile; the session's own idle_timeout_s
    (validated: at most limits.idle_timeout_s) when it set one."""
    timeout = s.start.idle_timeout_s or host.config.limits.idle_timeout_s
    loop = asyncio.get_running_loop()

    def check() -> None:
        s.idle_timer = None
        rec = select_session(host.state, s.id)
        if rec is None or rec.state not in (SessionState.listening, SessionState.speaking):
            return
        left = s.last_activity + timeout - loop.time()
        if left > 0:
            s.idle_timer = loop.call_later(left, check)
        else:
            host.dispatch(A.idle_detected(A.SessionRef(s.id)))

    s.idle_timer = loop.call_later(timeout, check)
