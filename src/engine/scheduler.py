"""Inference scheduler: one bounded executor for all blocking model work, in two lanes.

Finals have `workers` lanes (one per core by default) and partials `partial_workers` lanes of their own,
so a final never queues behind refresh partials. A final lane that no final is waiting for may take an
utterance's first partial (a short decode, run at the finals' priority). Providers that
can, run the partial lane at a lower CPU priority (faster-whisper: a model replica on a niced thread),
so a final on the same core gets the CPU first. A partial that is superseded (same key) before it
starts is dropped, so stale work never queues; while finals are waiting, new partials are refused (the
session skips that partial, never a final) unless they are an utterance's first or overdue (their
utterance has shown nothing for a while). Partials are served an utterance's first before refreshes,
and among them the utterance that has shown nothing for longest: fairness to the oldest pending partial.
Workers await an asyncio.Event: no polling.
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

from ..core.work import Batch, Superseded, run_on_lane

log = logging.getLogger(__name__)
T = TypeVar("T")

FINAL, PARTIAL = 0, 1


@dataclass(order=True)
class _Job:
    priority: int
    tier: int       # partials: 0 for an utterance's first, 1 for a refresh
    since: float    # partials: when the utterance last showed anything (the longest wait goes first)
    order: int
    fn: Callable[[], Any] = field(compare=False)
    future: asyncio.Future[Any] = field(compare=False)
    key: str | None = field(compare=False, default=None)
    queued_at: float = field(compare=False, default=0.0)
    batch: Batch | None = field(compare=False, default=None)


class Scheduler:
    def __init__(self, workers: int = 0, max_queue: int = 256, max_batch: int = 8, max_partial_batch: int = 2,
                 partial_workers: int = 1) -> None:
        self.workers = workers or os.cpu_count() or 1  # final lanes
        self.partial_workers = partial_workers
        self.max_queue = max_queue
        self.max_batch = max_batch
        # a batch holds its lane until its slowest item is done: partials keep batches small so the
        # lane is soon free for the newest audio (finals batch freely: they are all wanted now)
        self.max_partial_batch = max_partial_batch
        self.batches = 0
        self.batched_jobs = 0
        self._finals: list[_Job] = []
        self._partials: list[_Job] = []
        self._pending_partial: dict[str, _Job] = {}
        self._counter = itertools.count()
        self._wake: asyncio.Event | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self.running_finals = 0    # final jobs running
        self.final_lanes = 0       # final lanes taken (by finals, or by first partials)
        self.running_partials = 0  # partial lanes taken
        self.completed = 0
        self.dropped_partials = 0
        self.busy_s = 0.0

    async def start(self) -> None:
        if self._tasks:
            return
        self._wake = asyncio.Event()
        lanes = self.workers + self.partial_workers
        self._executor = ThreadPoolExecutor(lanes, thread_name_prefix="asrhub-infer")
        self._tasks = [asyncio.create_task(self._worker(i), name=f"scheduler-{i}") for i in range(lanes)]

    async def stop(self) -> None:
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        for job in (*self._finals, *self._partials):
            if not job.future.done():
                job.future.cancel()
        self._finals.clear()
        self._partials.clear()
        self._pending_partial.clear()
        if self._executor:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None

    @property
    def queue_depth(self) -> int:
        return len(self._finals) + len(self._partials)

    @property
    def running(self) -> int:
        """Jobs (or batches) running: one per lane taken."""
        return self.final_lanes + self.running_partials

    @property
    def finals_waiting(self) -> int:
        return len(self._finals)

    def finals_busy(self) -> bool:
        """Every final lane is taken by a final, or finals are queued (a first partial on a final lane is
        short: a final does not count it)."""
        return bool(self._finals) or self.running_finals >= self.workers

    def overloaded(self) -> bool:
        """Finals are queued: new partials are refused until they have run."""
        return bool(self._finals)

    def submit(self, fn: Callable[[], T], *, final: bool, key: str | None = None,
               batch: Batch | None = None, overdue: bool = False, first: bool = False,
               since: float | None = None) -> asyncio.Future[T] | None:
        """Queue a job; returns its future, or None if a partial is refused under load.

        Partials are served by how long their utterance has shown nothing: `first` (the utterance has no
        partial yet) before refreshes, then the oldest `since` (monotonic time of the utterance's start or
        of its last partial; default now). Under load (finals queued) a refresh is refused unless
        `overdue` (its utterance has shown nothing for a while); a first partial never is: it is the
        shortest decode and the one a listener is waiting for. Refreshes run on the partial lanes only; a
        first partial may also take a final lane that no final is waiting for (`_next_lane`)."""
        if not self._tasks or self._wake is None:
            raise RuntimeError("scheduler is not started")
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[T] = loop.create_future()
        now = time.monotonic()
        tier, waited = (0, 0.0) if final else (0 if first else 1, now if since is None else since)
        if not final:
            if self.overloaded() and not (overdue or first):
                self.dropped_partials += 1
                return None
            old = self._pending_partial.get(key) if key is not None else None
            if old is None and len(self._partials) >= self.max_queue:  # (superseding in place takes no room)
                self.dropped_partials += 1
                return None
            if old is not None:
                # supersede in place: the newer partial takes the older one's entry (and its rank, which
                # is the utterance's wait, not the request's), so stale work never queues
                if not old.future.done():
                    old.future.set_exception(Superseded())
                    old.future.exception()  # mark retrieved
                old.fn, old.future, old.batch = fn, fut, batch
                if (tier, waited) != (old.tier, old.since):
                    old.tier, old.since = tier, waited
                    heapq.heapify(self._partials)
                self.dropped_partials += 1
                self._wake.set()
                return fut
        job = _Job(FINAL if final else PARTIAL, tier, waited, next(self._counter), fn, fut, key, now, batch)
        if final:
            heapq.heappush(self._finals, job)
        else:
            if key is not None:
                self._pending_partial[key] = job
            heapq.heappush(self._partials, job)
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
            lane = self._next_lane()
            while lane is None:
                self._wake.clear()
                await self._wake.wait()
                lane = self._next_lane()
            queue, final_lane = lane
            job = self._pop(queue)
            if job is None:
                continue
            jobs = self._batch_with(job, queue, final_lane)
            if final_lane:
                self.final_lanes += 1
            else:
                self.running_partials += 1
            if job.priority == FINAL:
                self.running_finals += 1
            t0 = time.perf_counter()
            try:
                if len(jobs) == 1:
                    results = [await loop.run_in_executor(self._executor, run_on_lane, job.fn, final_lane)]
                else:
                    assert job.batch is not None
                    run, items = job.batch.run, [j.batch.item for j in jobs if j.batch is not None]
                    results = await loop.run_in_executor(self._executor, run_on_lane, run, final_lane, items)
                    self.batches += 1
                    self.batched_jobs += len(jobs)
            except Exception as e:  # delivered to the callers, never kills the worker
                for j in jobs:
                    if not j.future.done():
                        j.future.set_exception(e)
            else:
                for j, r in zip(jobs, results, strict=True):
                    if not j.future.done():
                        j.future.set_result(r)
            finally:
                if final_lane:
                    self.final_lanes -= 1
                else:
                    self.running_partials -= 1
                if job.priority == FINAL:
                    self.running_finals -= 1
                self.completed += len(jobs)
                if self._finals or self._partials:
                    self._wake.set()  # a lane is free again
                ran = time.perf_counter() - t0
                self.busy_s += ran
                if log.isEnabledFor(logging.DEBUG):
                    log.debug("lane %d ran %s x%d on a %s lane in %.0f ms after %.0f ms queued; %d finals, %d partials "
                              "waiting", index, "partial" if job.priority == PARTIAL else "final", len(jobs),
                              "final" if final_lane else "partial", ran * 1000,
                              (time.monotonic() - ran - job.queued_at) * 1000, len(self._finals), len(self._partials))

    def _next_lane(self) -> tuple[list[_Job], bool] | None:
        """The queue to take a job from, and whether it runs on a final lane. A final lane that no final
        is waiting for takes an utterance's first partial (short, and at the finals' priority it is not
        slowed by them); refreshes run only on the partial lanes."""
        if self._finals and self.final_lanes < self.workers:
            return self._finals, True
        while self._partials and self._partials[0].future.done():  # superseded or cancelled while queued
            self._forget(heapq.heappop(self._partials))
        if not self._partials:
            return None
        if self._partials[0].tier == 0 and self.final_lanes < self.workers:
            return self._partials, True
        if self.running_partials < self.partial_workers:
            return self._partials, False
        return None

    def _pop(self, queue: list[_Job]) -> _Job | None:
        job = heapq.heappop(queue)
        self._forget(job)
        return None if job.future.done() else job  # superseded or cancelled while queued

    def _forget(self, job: _Job) -> None:
        if job.priority == PARTIAL and job.key is not None and self._pending_partial.get(job.key) is job:
            del self._pending_partial[job.key]

    def _batch_with(self, job: _Job, queue: list[_Job], final_lane: bool = False) -> list[_Job]:
        """`job` plus queued jobs of its lane with the same batch key (up to max_batch / max_partial_batch;
        a partial on a final lane takes only other first partials)."""
        limit = self.max_batch if job.priority == FINAL else self.max_partial_batch
        if job.batch is None or limit <= 1:
            return [job]
        firsts_only = final_lane and job.priority == PARTIAL
        mates = sorted(j for j in queue if j.batch is not None and j.batch.key == job.batch.key
                       and not j.future.done() and (j.tier == 0 or not firsts_only))[: limit - 1]  # oldest first
        if not mates:
            return [job]
        taken = {id(j) for j in mates}
        queue[:] = [j for j in queue if id(j) not in taken]
        heapq.heapify(queue)
        for j in mates:
            self._forget(j)
        return [job, *mates]
