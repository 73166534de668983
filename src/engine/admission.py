"""Admission: whether a new session may start (DESIGN §3.2 `too_many_sessions`).

Counts come from the store (live sessions in total and per API key); the lag test looks at the data
plane (the oldest audio still waiting for its final), because inference being saturated shows there
before any count does.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, NoReturn, Protocol

from ..core.auth import key_id
from ..core.config import HubConfig
from ..core.errors import ErrorCode, HubError, KeyQuotaError
from ..store.sessions.selectors import select_live_count, select_live_sessions
from .session import Session


class AdmissionHost(Protocol):
    config: HubConfig

    @property
    def state(self) -> Any: ...

    def plane(self, session_id: str) -> Session | None: ...


class Admission:
    #: Told the reason ("sessions", "key_sessions", "lag") of every refusal (the metrics bind it).
    on_refused: Callable[[str], None] | None = None

    def __init__(self, host: AdmissionHost) -> None:
        self.host = host
        keys = host.config.server.auth.api_keys
        self.key_limits = {key_id(k) or "": k.max_sessions for k in keys if k.max_sessions}

    def admit(self, api_key: str | None, *, lag: bool = True) -> None:
        """`lag=False`: a session taken over from a dead node (it is not new load for the cluster, and
        refusing it would end it), so only the session counts apply."""
        limits = self.host.config.limits
        state = self.host.state
        if select_live_count(state) >= limits.max_sessions:
            self._refuse("sessions", f"the hub is at its limit of {limits.max_sessions} sessions", 5)
        per_key = self.key_limits.get(api_key or "", limits.max_sessions_per_key)
        if api_key is not None and select_live_count(state, api_key) >= per_key:
            self._refuse("key_sessions", f"this API key is at its limit of {per_key} sessions", 5, KeyQuotaError)
        # Refuse new sessions before admitted ones fall behind: when finals already wait for more than
        # `admission_lag_s`, inference is saturated (partials are being skipped already).
        behind = self.max_pending_lag() if lag else 0.0
        if behind > limits.admission_lag_s:
            self._refuse("lag", f"the hub is at capacity (results trail audio by {behind:.1f} s); try again "
                         "shortly", max(1, int(behind)))

    def _refuse(self, reason: str, message: str, retry_after_s: int, kind: type[HubError] = HubError) -> NoReturn:
        if self.on_refused is not None:
            self.on_refused(reason)
        raise kind(ErrorCode.too_many_sessions, message, retry_after_s=retry_after_s)

    def max_pending_lag(self) -> float:
        """Seconds since the oldest audio still waiting for its final arrived."""
        now = time.perf_counter()
        planes = (self.host.plane(sid) for sid in select_live_sessions(self.host.state))
        oldest = [s.arrival_time(min(end for _, end in s.pending.values())) for s in planes if s is not None and s.pending]
        return now - min(oldest) if oldest else 0.0
