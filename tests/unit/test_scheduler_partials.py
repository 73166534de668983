"""Partials under load (issue 11 item 4): an utterance's first partial goes before refreshes and is never
refused, a free final lane takes it (at the finals' priority), and refreshes are served longest-waiting
first. Real scheduler, real threads; jobs block on events, so no timing is assumed."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable

from asrhub.core.scheduler import Scheduler
from asrhub.core.work import on_final_lane


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
        assert s.running_finals == 0 and s.running_partials == 0
        await s.stop()

    asyncio.run(run())


def test_first_partials_before_refreshes_and_the_longest_wait_first() -> None:
    async def run() -> None:
        s = Scheduler(workers=1, partial_workers=1, max_partial_batch=1)
        await s.start()
        log: list[tuple[str, bool]] = []
        busy, lane = Gate(), Gate()
        held = s.submit(busy.job("refresh-0", log), final=False, key="z")  # (a queued final would refuse it)
        final = s.submit(lane.job("final", log), final=True)  # holds the final lane throughout: one lane runs
        await lane.wait_started()
        await busy.wait_started()  # both lanes are held
        now = time.monotonic()
        jobs = [
            s.submit(record("refresh-recent", log), final=False, key="a", since=now - 0.5),
            s.submit(record("refresh-old", log), final=False, key="b", since=now - 3.0),
            s.submit(record("first-late", log), final=False, key="c", first=True, since=now - 0.2),
            s.submit(record("first-early", log), final=False, key="d", first=True, since=now - 0.4),
        ]
        assert final and held and all(jobs)
        busy.release.set()
        await asyncio.gather(held, *jobs)  # type: ignore[arg-type]
        lane.release.set()
        await final
        order = [name for name, _ in log if name not in ("final", "refresh-0")]
        assert order == ["first-early", "first-late", "refresh-old", "refresh-recent"], order
        await s.stop()

    asyncio.run(run())


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
    async def run() -> None:
        s = Scheduler(workers=1, partial_workers=1, max_partial_batch=1)
        await s.start()
        log: list[tuple[str, bool]] = []
        busy, lane = Gate(), Gate()
        held = s.submit(busy.job("refresh-0", log), final=False, key="z")  # (a queued final would refuse it)
        final = s.submit(lane.job("final", log), final=True)  # holds the final lane throughout: one lane runs
        await lane.wait_started()
        await busy.wait_started()
        now = time.monotonic()
        other = s.submit(record("other", log), final=False, key="a", since=now - 1.0)
        stale = s.submit(record("stale", log), final=False, key="b", since=now - 0.1)
        # the same utterance asks again before its partial ran; it has now waited for its first words
        newer = s.submit(record("newer", log), final=False, key="b", first=True, since=now - 0.1)
        assert final and held and other and stale and newer
        busy.release.set()
        await asyncio.gather(held, other, newer)  # type: ignore[arg-type]
        lane.release.set()
        await final
        assert stale.cancelled() or stale.exception() is not None
        order = [name for name, _ in log if name not in ("final", "refresh-0")]
        assert order == ["newer", "other"], order
        await s.stop()

    asyncio.run(run())
