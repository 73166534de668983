"""Inference scheduler: one bounded executor for all blocking model work.

Finals run before partials. A partial that is superseded (same key) before it starts is dropped, so
stale work never queues; when finals are already waiting for every worker, new partials are refused
(the session skips that partial, never a final). Workers await an asyncio.Event: no polling.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import os
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

log = logging.getLogger(__name__)
T = TypeVar("T")

FINAL, PARTIAL = 0, 1


class Superseded(Exception):
    """A partial job replaced by a newer one before it ran."""


@dataclass(order=True)
class _Job:
    priority: int
    order: int
    fn: Callable[[], Any] = field(compare=False)
    future: asyncio.Future[Any] = field(compare=False)
    key: str | None = field(compare=False, default=None)
    queued_at: float = field(compare=False, default=0.0)


class Scheduler:
    def __init__(self, workers: int = 0, max_queue: int = 256) -> None:
        self.workers = workers or os.cpu_count() or 1
        self.max_queue = max_queue
        self._heap: list[_Job] = []
        self._pending_partial: dict[str, _Job] = {}
        self._counter = itertools.count()
        self._wake: asyncio.Event | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self.running = 0
        self.finals_waiting = 0
        self.completed = 0
        self.dropped_partials = 0
        self.busy_s = 0.0

    async def start(self) -> None:
        if self._tasks:
            return
        self._wake = asyncio.Event()
        self._executor = ThreadPoolExecutor(self.workers, thread_name_prefix="asrhub-infer")
        self._tasks = [asyncio.create_task(self._worker(i), name=f"scheduler-{i}") for i in range(self.workers)]

    async def stop(self) -> None:
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        for job in self._heap:
            if not job.future.done():
                job.future.cancel()
        self._heap.clear()
        if self._executor:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None

    @property
    def queue_depth(self) -> int:
        return len(self._heap)

    def overloaded(self) -> bool:
        return self.finals_waiting >= self.workers

    def submit(self, fn: Callable[[], T], *, final: bool, key: str | None = None) -> asyncio.Future[T] | None:
        """Queue a job; returns its future, or None if a partial is refused under load."""
        if not self._tasks or self._wake is None:
            raise RuntimeError("scheduler is not started")
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[T] = loop.create_future()
        if not final:
            if self.overloaded() or len(self._heap) >= self.max_queue:
                self.dropped_partials += 1
                return None
            old = self._pending_partial.get(key) if key is not None else None
            if old is not None:
                # supersede in place: the newer partial keeps the older one's place in the queue, so a
                # session that keeps talking is not starved by sessions queued behind it
                if not old.future.done():
                    old.future.set_exception(Superseded())
                    old.future.exception()  # mark retrieved
                old.fn, old.future = fn, fut
                self.dropped_partials += 1
                return fut
        job = _Job(FINAL if final else PARTIAL, next(self._counter), fn, fut, key, time.monotonic())
        if final:
            self.finals_waiting += 1
        elif key is not None:
            self._pending_partial[key] = job
        heapq.heappush(self._heap, job)
        self._wake.set()
        return fut

    async def run(self, fn: Callable[[], T], *, final: bool = True) -> T:
        fut = self.submit(fn, final=final)
        if fut is None:
            raise Superseded()
        return await fut

    async def _worker(self, index: int) -> None:
        assert self._wake is not None
        loop = asyncio.get_running_loop()
        while True:
            while not self._heap:
                self._wake.clear()
                await self._wake.wait()
            job = heapq.heappop(self._heap)
            if job.priority == FINAL:
                self.finals_waiting -= 1
            elif job.key is not None and self._pending_partial.get(job.key) is job:
                del self._pending_partial[job.key]
            if job.future.done():  # superseded or cancelled while queued
                continue
            self.running += 1
            t0 = time.perf_counter()
            try:
                result = await loop.run_in_executor(self._executor, job.fn)
            except Exception as e:  # delivered to the caller, never kills the worker
                if not job.future.done():
                    job.future.set_exception(e)
            else:
                if not job.future.done():
                    job.future.set_result(result)
            finally:
                self.running -= 1
                self.completed += 1
                self.busy_s += time.perf_counter() - t0
