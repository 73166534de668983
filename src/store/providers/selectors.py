"""Providers slice selectors."""

from __future__ import annotations

from typing import Any

from .reducer import ProviderRecord


def select_provider(state: Any, name: str) -> ProviderRecord | None:
    return state["providers"].get(name)  # type: ignore[no-any-return]


def select_providers(state: Any) -> dict[str, ProviderRecord]:
    return dict(state["providers"].items())
