"""Partials under load (issue 11 item 4): an utterance's first partial goes before refreshes and is never
refused, a free final lane takes it (at the finals' priority), and refreshes are served longest-waiting
first. Real scheduler, real threads; jobs block on events, so no timing is assumed."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable

from asrhub.core.work import on_final_lane
from asrhub.engine.scheduler import Scheduler


class Gate:
    """Jobs that block until released, and report that they started."""

    def __init__(self) -> None:
        self.started = threading.Semaphore(0)
        self.release = threading.Event()

    def job(self, name: str, log: list[tuple[str, bool]]) -> Callable[[], str]:
        def run() -> str:
            log.append((name, on_final_lane()))
            self.started.release()
            self.release.wait(10)
            return name
        return run

    async def wait_started(self, n: int = 1) -> None:
        for _ in range(n):
            assert await asyncio.to_thread(self.started.acquire, True, 10)


def record(name: str, log: list[tuple[str, bool]]) -> Callable[[], str]:
    def run() -> str:
        log.append((name, on_final_lane()))
        return name
    return run


Queued = list["asyncio.Future[str] | None"]


async def run_order(queue: Callable[[Scheduler, list[tuple[str, bool]], float], Queued]) -> tuple[list[str], Queued]:
    """A scheduler with one final lane and one partial lane (no partial batches), both held by blocked
    jobs; `queue(scheduler, log, now)` submits partials meanwhile. The partial lane is freed first and the
    final lane only after, so one lane runs them: returns their run order and their futures."""
    s = Scheduler(workers=1, partial_workers=1, max_partial_batch=1)
    await s.start()
    log: list[tuple[str, bool]] = []
    busy, lane = Gate(), Gate()
    held = s.submit(busy.job("refresh-0", log), final=False, key="z")  # (a queued final would refuse it)
    final = s.submit(lane.job("final", log), final=True)  # holds the final lane throughout
    await lane.wait_started()
    await busy.wait_started()  # both lanes are held
    jobs = queue(s, log, time.monotonic())
    assert final and held
    busy.release.set()
    await asyncio.gather(held, *(j for j in jobs if j is not None and not j.done()))  # (a superseded one is done)
    lane.release.set()
    await final
    await s.stop()
    return [name for name, _ in log if name not in ("final", "refresh-0")], jobs


def test_a_first_partial_takes_a_free_final_lane_and_refreshes_do_not() -> None:
    async def run() -> None:
        s = Scheduler(workers=1, partial_workers=1)
        await s.start()
        log: list[tuple[str, bool]] = []
        busy = Gate()
        refresh = s.submit(busy.job("refresh-a", log), final=False, key="a")  # holds the partial lane
        await busy.wait_started()
        queued = s.submit(record("refresh-b", log), final=False, key="b")  # waits for the partial lane
        first = s.submit(record("first-c", log), final=False, key="c", first=True)
        assert refresh and queued and first
        assert await first == "first-c"  # ran while the partial lane was still held
        assert ("first-c", True) in log and not queued.done()
        busy.release.set()
        assert await asyncio.gather(refresh, queued) == ["refresh-a", "refresh-b"]
        assert ("refresh-a", False) in log and ("refresh-b", False) in log  # refreshes: partial lane only
        assert s.running_finals == 0 and s.final_lanes == 0 and s.running_partials == 0
        await s.stop()

    asyncio.run(run())


def test_first_partials_before_refreshes_and_the_longest_wait_first() -> None:
    def queue(s: Scheduler, log: list[tuple[str, bool]], now: float) -> Queued:
        return [
            s.submit(record("refresh-recent", log), final=False, key="a", since=now - 0.5),
            s.submit(record("refresh-old", log), final=False, key="b", since=now - 3.0),
            s.submit(record("first-late", log), final=False, key="c", first=True, since=now - 0.2),
            s.submit(record("first-early", log), final=False, key="d", first=True, since=now - 0.4),
        ]

    order, jobs = asyncio.run(run_order(queue))
    assert all(jobs)
    assert order == ["first-early", "first-late", "refresh-old", "refresh-recent"], order


def test_under_load_a_first_partial_is_queued_and_a_refresh_refused() -> None:
    async def run() -> None:
        s = Scheduler(workers=1, partial_workers=1)
        await s.start()
        log: list[tuple[str, bool]] = []
        busy = Gate()
        running = s.submit(busy.job("final-0", log), final=True)
        await busy.wait_started()
        waiting = s.submit(record("final-1", log), final=True)  # a final is queued: the hub is behind
        assert s.overloaded()
        assert s.submit(record("refresh", log), final=False, key="a") is None
        first = s.submit(record("first", log), final=False, key="b", first=True)
        assert first is not None and running and waiting
        assert await first == "first"  # on the partial lane: the final lane is taken
        assert ("first", False) in log
        busy.release.set()
        assert await asyncio.gather(running, waiting) == ["final-0", "final-1"]
        await s.stop()

    asyncio.run(run())


def test_a_superseding_partial_takes_the_rank_of_its_utterance() -> None:
    def queue(s: Scheduler, log: list[tuple[str, bool]], now: float) -> Queued:
        other = s.submit(record("other", log), final=False, key="a", since=now - 1.0)
        stale = s.submit(record("stale", log), final=False, key="b", since=now - 0.1)
        # the same utterance asks again before its partial ran; it has now waited for its first words
        newer = s.submit(record("newer", log), final=False, key="b", first=True, since=now - 0.1)
        return [other, stale, newer]

    order, (other, stale, newer) = asyncio.run(run_order(queue))
    assert other and stale and newer
    assert stale.cancelled() or stale.exception() is not None
    assert order == ["newer", "other"], order
