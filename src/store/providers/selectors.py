"""Providers slice selectors: the one view of provider health (routing, failover, /v1/providers,
metrics all read it here)."""

from __future__ import annotations

from typing import Any

from .reducer import ProviderRecord

BAD = ("unhealthy", "unavailable")


def select_provider(state: Any, name: str) -> ProviderRecord | None:
    return state["providers"].get(name)  # type: ignore[no-any-return]


def select_providers(state: Any) -> dict[str, ProviderRecord]:
    return dict(state["providers"].items())


def select_status(state: Any, name: str) -> tuple[str, str | None]:
    """(status, reason) of a provider; "loading" until its load has been reported."""
    rec = select_provider(state, name)
    return ("loading", None) if rec is None else (rec.status, rec.reason)


def select_available(state: Any, name: str) -> bool:
    return select_status(state, name)[0] == "available"
