"""Hub slice actions: readiness and draining."""

from __future__ import annotations

from dataclasses import dataclass

from ..base import ActionType


@dataclass(frozen=True)
class Flag:
    value: bool


ready_changed = ActionType[Flag]("[Hub] Ready Changed")
draining_started = ActionType[Flag]("[Hub] Draining")
