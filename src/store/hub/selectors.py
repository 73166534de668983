"""Hub slice selectors."""

from __future__ import annotations

from typing import Any


def select_ready(state: Any) -> bool:
    return bool(state["hub"]["ready"])


def select_draining(state: Any) -> bool:
    return bool(state["hub"]["draining"])
