"""The inference scheduler (engine/scheduler.py) beyond its partial ordering (test_scheduler_partials):
start and stop, failures, the partial queue's bound, cancellation while queued, the lane counters and the
final lanes running side by side. Real scheduler, real threads; jobs block on events, so no timing is
assumed."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable

import pytest

from asrhub.core.work import Batch, Superseded, on_final_lane
from asrhub.engine.scheduler import Scheduler


class Hold:
    """A job that reports that it started, then blocks until released."""

    def __init__(self, result: str = "held") -> None:
        self.result = result
        self.started = threading.Event()
        self.release = threading.Event()

    def __call__(self) -> str:
        self.started.set()
        assert self.release.wait(10), "never released"
        return self.result

    async def running(self) -> None:
        assert await asyncio.to_thread(self.started.wait, 10), "never started"


def ran(log: list[str], name: str) -> Callable[[], str]:
    def run() -> str:
        log.append(name)
        return name
    return run


async def started(**kw: int) -> Scheduler:
    s = Scheduler(**kw)
    await s.start()
    return s


class Lanes:
    """A scheduler's one partial lane and one final lane, each held by a blocked job."""

    def __init__(self, s: Scheduler) -> None:
        self.partial, self.final = Hold("partial"), Hold("final")
        # the partial first: a final still queued would refuse it
        self.jobs = [s.submit(self.partial, final=False, key="busy"), s.submit(self.final, final=True)]

    async def held(self) -> Lanes:
        await self.partial.running()
        await self.final.running()
        return self

    def release(self) -> None:
        self.partial.release.set()
        self.final.release.set()

    async def done(self) -> None:
        self.release()
        assert await asyncio.gather(*self.jobs) == ["partial", "final"]  # type: ignore[arg-type]


def test_submitting_before_start_is_an_error() -> None:
    async def run() -> None:
        s = Scheduler(workers=1)
        with pytest.raises(RuntimeError, match="not started"):
            s.submit(lambda: 1, final=True)
        await s.start()
        tasks = list(s._tasks)
        await s.start()  # a second start changes nothing
        assert s._tasks == tasks and len(tasks) == 2  # one final lane + one partial lane
        assert await s.run(lambda: 42) == 42
        await s.stop()
        with pytest.raises(RuntimeError, match="not started"):
            s.submit(lambda: 1, final=True)

    asyncio.run(run())


def test_a_failing_job_fails_its_caller_and_the_lane_goes_on() -> None:
    async def run() -> None:
        s = await started(workers=1, partial_workers=1)

        def boom() -> str:
            raise ValueError("model exploded")

        with pytest.raises(ValueError, match="model exploded"):
            await s.run(boom)
        assert await s.run(lambda: "next") == "next"  # the worker survived
        fut = s.submit(boom, final=False, key="a")
        assert fut is not None
        with pytest.raises(ValueError, match="model exploded"):
            await fut
        assert s.completed == 3 and s.running == 0 and s.running_finals == 0
        await s.stop()

    asyncio.run(run())


def test_a_failing_batch_fails_every_job_in_it() -> None:
    async def run() -> None:
        s = await started(workers=1, partial_workers=1, max_batch=8)
        hold = Hold()
        first = s.submit(hold, final=True)
        await hold.running()

        def broken(items: list[str]) -> list[str]:
            raise RuntimeError(f"batch of {len(items)} failed")

        queued = [s.submit(lambda: "alone", final=True, batch=Batch("k", broken, i)) for i in range(3)]
        hold.release.set()
        assert await first == "held"
        results = await asyncio.gather(*queued, return_exceptions=True)  # type: ignore[arg-type]
        assert [str(r) for r in results] == ["batch of 3 failed"] * 3
        assert s.completed == 4 and s.running == 0  # the held job and the three of the batch
        await s.stop()

    asyncio.run(run())


def test_run_of_a_refused_partial_raises_superseded() -> None:
    async def run() -> None:
        s = await started(workers=1, partial_workers=1)
        hold = Hold()
        running = s.submit(hold, final=True)
        await hold.running()
        waiting = s.submit(lambda: "queued final", final=True)  # finals queued: the hub is behind
        before = s.dropped_partials
        with pytest.raises(Superseded):
            await s.run(lambda: "partial", final=False)
        assert s.dropped_partials == before + 1
        hold.release.set()
        assert await asyncio.gather(running, waiting) == ["held", "queued final"]  # type: ignore[arg-type]
        await s.stop()

    asyncio.run(run())


def test_partials_past_the_queue_bound_are_refused() -> None:
    async def run() -> None:
        s = await started(workers=1, partial_workers=1, max_queue=3)
        lanes = await Lanes(s).held()
        log: list[str] = []
        queued = [s.submit(ran(log, f"p{i}"), final=False, key=f"k{i}") for i in range(3)]
        assert all(queued) and s.queue_depth == 3
        assert s.submit(ran(log, "p3"), final=False, key="k3") is None  # the fourth: no room
        late = s.submit(ran(log, "late"), final=False, key="k0")  # superseding in place takes no room
        assert late is not None
        await lanes.done()
        with pytest.raises(Superseded):
            await queued[0]  # type: ignore[misc]
        assert sorted(await asyncio.gather(late, *queued[1:])) == ["late", "p1", "p2"]  # type: ignore[misc]
        assert "p3" not in log and "p0" not in log
        await s.stop()

    asyncio.run(run())


def test_a_job_cancelled_while_queued_never_runs() -> None:
    async def run() -> None:
        s = await started(workers=1, partial_workers=1)
        lanes = await Lanes(s).held()
        log: list[str] = []
        gone_partial = s.submit(ran(log, "partial-cancelled"), final=False, key="a")
        kept = s.submit(ran(log, "kept"), final=False, key="b")
        gone_final = s.submit(ran(log, "final-cancelled"), final=True)  # (after: a queued final refuses partials)
        assert gone_final and gone_partial and kept
        gone_final.cancel()
        gone_partial.cancel()
        await lanes.done()
        assert await kept == "kept"
        assert log == ["kept"]
        assert s._pending_partial == {}  # the cancelled partial's key is forgotten
        await s.stop()

    asyncio.run(run())


def test_stop_cancels_what_is_still_queued() -> None:
    async def run() -> None:
        s = await started(workers=1, partial_workers=1)
        lanes = await Lanes(s).held()
        queued = [s.submit(lambda: "p", final=False, key="a"), s.submit(lambda: "f", final=True)]
        lanes.release()  # (stop does not wait for the threads)
        await s.stop()
        assert all(q is not None and q.cancelled() for q in queued)
        assert s.queue_depth == 0 and s._pending_partial == {}

    asyncio.run(run())


def test_final_lanes_run_side_by_side_and_the_counters_follow() -> None:
    async def run() -> None:
        s = await started(workers=2, partial_workers=1)
        a, b = Hold("a"), Hold("b")
        fa, fb = s.submit(a, final=True), s.submit(b, final=True)
        await a.running()
        await b.running()  # both at once: two final lanes
        assert s.running_finals == 2 and s.final_lanes == 2 and s.running == 2
        assert s.finals_busy() and not s.overloaded()  # busy, but nothing queued: partials still welcome
        third = s.submit(lambda: "c", final=True)
        assert s.finals_waiting == 1 and s.overloaded()
        a.release.set()
        b.release.set()
        assert await asyncio.gather(fa, fb, third) == ["a", "b", "c"]  # type: ignore[arg-type]
        assert s.running == 0 and s.running_finals == 0 and s.completed == 3 and s.busy_s > 0
        await s.stop()

    asyncio.run(run())


def test_a_final_goes_before_a_queued_first_partial_on_a_final_lane() -> None:
    async def run() -> None:
        s = await started(workers=1, partial_workers=1)
        lanes = await Lanes(s).held()
        ran_on: list[tuple[str, bool]] = []

        def on(name: str) -> Callable[[], str]:
            def run() -> str:
                ran_on.append((name, on_final_lane()))
                return name
            return run

        first = s.submit(on("first"), final=False, key="a", first=True)
        final = s.submit(on("final"), final=True)
        lanes.final.release.set()  # the final lane frees first: the final takes it, then the first partial
        assert await asyncio.gather(lanes.jobs[1], final, first) == ["final", "final", "first"]  # type: ignore[arg-type]
        assert ran_on == [("final", True), ("first", True)]
        await lanes.done()
        await s.stop()

    asyncio.run(run())
