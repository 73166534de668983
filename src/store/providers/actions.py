"""Providers slice actions."""

from __future__ import annotations

from dataclasses import dataclass

from ..base import ActionType


@dataclass(frozen=True)
class StatusChanged:
    name: str
    status: str
    reason: str | None


@dataclass(frozen=True)
class Failed:
    """A provider failed a session: an exception for a result, or (`timeout`) no final in time."""

    name: str
    session_id: str | None
    utterance_id: str | None
    message: str
    timeout: bool = False


status_changed = ActionType[StatusChanged]("[Provider] Status Changed")
failed = ActionType[Failed]("[Provider] Failed")
