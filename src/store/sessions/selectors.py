"""Sessions slice selectors (plain functions of the root state)."""

from __future__ import annotations

from collections import Counter
from typing import Any

from .state import OPEN, SessionRecord, SessionState


def select_sessions(state: Any) -> Any:
    return state["sessions"]


def select_session(state: Any, session_id: str) -> SessionRecord | None:
    return state["sessions"].get(session_id)  # type: ignore[no-any-return]


def select_state(state: Any, session_id: str) -> SessionState | None:
    rec = select_session(state, session_id)
    return None if rec is None else rec.state


def select_created_at(state: Any, session_id: str) -> float | None:
    """When the session was created (unix time); None for a session the store does not hold."""
    rec = select_session(state, session_id)
    return None if rec is None else rec.created_at


def select_is_open(state: Any, session_id: str) -> bool:
    """The session takes audio, flush and stop (listening or speaking)."""
    return select_state(state, session_id) in OPEN


def select_is_live(state: Any, session_id: str) -> bool:
    """Not ended (a finalizing session is still live: its last finals are on their way)."""
    rec = select_session(state, session_id)
    return rec is not None and rec.live


def select_live_count(state: Any, api_key: str | None = None) -> int:
    return sum(1 for r in state["sessions"].values()
               if r.live and (api_key is None or r.api_key == api_key))


def select_live_on_provider(state: Any, provider: str) -> list[str]:
    """Ids of the live sessions (finalizing too: their last finals are due) on `provider`."""
    return [r.id for r in state["sessions"].values() if r.provider == provider and r.live]


def select_live_sessions(state: Any) -> list[str]:
    return [r.id for r in state["sessions"].values() if r.live]


def select_counts_by_state(state: Any) -> dict[str, int]:
    counts = {s.value: 0 for s in SessionState}
    counts.update(Counter(r.state.value for r in state["sessions"].values()))
    return counts


def select_counts_by_transport(state: Any) -> dict[str, int]:
    return dict(Counter(r.transport for r in state["sessions"].values() if r.live))
