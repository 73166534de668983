"""Sessions slice selectors (plain functions of the root state)."""

from __future__ import annotations

from collections import Counter
from typing import Any

from .reducer import SessionRecord


def select_sessions(state: Any) -> Any:
    return state["sessions"]


def select_session(state: Any, session_id: str) -> SessionRecord | None:
    return state["sessions"].get(session_id)  # type: ignore[no-any-return]


def select_live_count(state: Any, api_key: str | None = None) -> int:
    return sum(1 for r in state["sessions"].values()
               if r.state != "ended" and (api_key is None or r.api_key == api_key))


def select_counts_by_state(state: Any) -> dict[str, int]:
    return dict(Counter(r.state for r in state["sessions"].values()))


def select_counts_by_transport(state: Any) -> dict[str, int]:
    return dict(Counter(r.transport for r in state["sessions"].values() if r.state != "ended"))
