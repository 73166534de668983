"""How long a session is held here without a client: which connection it is on (its attachment, +1 on
each resume), the resume window a detached session waits in before it ends, the time an ended one stays
for resume and replay before it is forgotten, and the sessions a DELETE made gone for every request.

One removal timer per session at most: the resume window's, or the forgetting's after the end."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, Protocol

from pystorex import Action

from ..core.config import HubConfig
from ..core.errors import ClientError, ErrorCode, SessionStateError
from ..store.sessions import actions as A
from ..store.sessions.selectors import select_session
from ..store.sessions.state import SessionState
from .hooks import ClusterHooks
from .session import Session


class RetentionHost(Protocol):
    """What retention needs of the session service."""

    config: HubConfig
    cluster: ClusterHooks | None

    @property
    def state(self) -> Any: ...

    def dispatch(self, action: Action[Any]) -> None: ...

    def plane(self, session_id: str) -> Session | None: ...

    def is_live(self, session_id: str) -> bool: ...

    def end(self, session_id: str, reason: str) -> None: ...


class Retention:
    def __init__(self, host: RetentionHost, release: Callable[[str], None]) -> None:
        """`release`: forget a session for good (its data plane and its record), when its time is up."""
        self.host = host
        self._release = release
        self._removals: dict[str, asyncio.TimerHandle] = {}   # ended or detached: when to forget it
        self._deleted: set[str] = set()  # DELETEd: gone for every client request, until forgotten

    def close(self) -> None:
        for t in self._removals.values():
            t.cancel()

    # -- the client ----------------------------------------------------------------------------
    def attachment(self, session_id: str) -> int:
        """Which client connection the session is on now (each resume makes a new one)."""
        rec = select_session(self.host.state, session_id)
        return rec.attachment if rec is not None else 0

    def detach(self, session_id: str, attachment: int | None = None) -> None:
        """The client of `attachment` (default: the current one) went away. The session waits
        `resume_window_s` for a resume; a connection that a resume has replaced detaches nothing."""
        rec = select_session(self.host.state, session_id)
        if rec is None or not rec.live:
            return
        if attachment is not None and attachment != rec.attachment:
            return
        self.host.dispatch(A.detached(A.Detached(session_id, rec.attachment)))
        window = self.host.config.limits.resume_window_s
        if window <= 0 or rec.state == SessionState.finalizing:
            if rec.state != SessionState.finalizing:
                self.host.end(session_id, "client_gone")
            return
        self._schedule(session_id, window, self._detach_expired)

    def _detach_expired(self, session_id: str) -> None:
        self._removals.pop(session_id, None)
        rec = select_session(self.host.state, session_id)
        if rec is not None and not rec.attached:
            self.host.end(session_id, "client_gone")

    def resume(self, session_id: str, last_seq: int) -> Session:
        s = self.host.plane(session_id)
        if s is None:
            raise ClientError(ErrorCode.session_not_found, f"no session '{session_id}' to resume (expired or unknown)")
        self.check_not_deleted(session_id)
        if last_seq > s.channel.last_seq or not s.channel.can_replay(last_seq):
            raise SessionStateError(ErrorCode.invalid_command, f"cannot resume from seq {last_seq}: the hub holds events "
                              f"up to {s.channel.last_seq}")
        cluster = self.host.cluster
        if self.attach(session_id) and cluster is not None:
            cluster.resumed(session_id)
        return s

    def attach(self, session_id: str) -> int:
        """A client (here, or bridged from another node) takes the session over: its resume window stops.
        The new attachment; 0 when the session has ended (its events can still be replayed)."""
        s = self.host.plane(session_id)
        if s is None or not self.host.is_live(session_id):
            return 0
        t = self._removals.pop(session_id, None)
        if t:
            t.cancel()
        self.host.dispatch(A.attached(A.SessionRef(session_id)))
        s.last_activity = asyncio.get_running_loop().time()
        return self.attachment(session_id)

    # -- deleted and forgotten -------------------------------------------------------------------
    def delete(self, session_id: str) -> None:
        """DELETEd: gone for every later client request until it is forgotten."""
        self._deleted.add(session_id)

    def check_not_deleted(self, session_id: str) -> None:
        if session_id in self._deleted:
            raise ClientError(ErrorCode.session_not_found, f"no session '{session_id}' (it was deleted)")

    def forget_later(self, session_id: str) -> None:
        """An ended session stays (for resume and replay) for the resume window, then goes."""
        self._schedule(session_id, max(self.host.config.limits.resume_window_s, 1.0), self._remove)

    def _remove(self, session_id: str) -> None:
        self._removals.pop(session_id, None)
        self._deleted.discard(session_id)
        self._release(session_id)

    def _schedule(self, session_id: str, delay: float, fn: Callable[[str], None]) -> None:
        old = self._removals.pop(session_id, None)
        if old is not None:
            old.cancel()
        self._removals[session_id] = asyncio.get_running_loop().call_later(delay, fn, session_id)
