"""The vocabulary of scheduled model work: what providers hand to the scheduler, and what it answers.

Providers import this module, never the scheduler itself (the scheduler belongs to the engine, DESIGN
§2 "imports flow one way"); `Scheduling` is the narrow port a provider is given.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

T = TypeVar("T")

_lane = threading.local()


def on_final_lane() -> bool:
    """True while the calling thread runs a job on one of the finals' lanes. A partial can run there (an
    utterance's first partial, taken by a free final lane); a provider with a low-priority replica for
    partials then decodes it on the finals' replica, at their priority."""
    return bool(getattr(_lane, "final", False))


def run_on_lane(fn: Callable[..., T], final: bool, *args: Any) -> T:
    """Run `fn(*args)` with `on_final_lane()` answering `final` (called by the scheduler's workers)."""
    _lane.final = final
    try:
        return fn(*args)
    finally:
        _lane.final = False


class Superseded(Exception):
    """A partial job replaced by a newer one before it ran."""


@dataclass(frozen=True)
class Batch:
    """Marks a job as batchable: queued jobs with the same `key` may run as one `run(items)` call,
    which returns one result per item, in order."""

    key: str
    run: Callable[[list[Any]], list[Any]]
    item: Any


class Scheduling(Protocol):
    """The part of the scheduler a provider uses."""

    workers: int           # final lanes (one per core by default)
    partial_workers: int   # lanes of their own for partials

    def submit(self, fn: Callable[[], T], *, final: bool, key: str | None = None,
               batch: Batch | None = None, overdue: bool = False, first: bool = False,
               since: float | None = None) -> asyncio.Future[T] | None: ...

    async def run(self, fn: Callable[[], T], *, final: bool = True) -> T: ...

    def finals_busy(self) -> bool: ...

    @property
    def finals_waiting(self) -> int: ...
