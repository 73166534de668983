"""The vocabulary of scheduled model work: what providers hand to the scheduler, and what it answers.

Providers import this module, never the scheduler itself (the scheduler belongs to the engine, DESIGN
§2 "imports flow one way"); `Scheduling` is the narrow port a provider is given.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

T = TypeVar("T")


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
               batch: Batch | None = None, overdue: bool = False) -> asyncio.Future[T] | None: ...

    async def run(self, fn: Callable[[], T], *, final: bool = True) -> T: ...

    def finals_busy(self) -> bool: ...

    @property
    def finals_waiting(self) -> int: ...
