"""The tests' one way of waiting (tests/support.py): `until` re-checks a condition each time an event
fires, never on a clock tick; `FileWatch` turns writes to a file into such events (inotify), set up
before the first check so that no write is missed."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from tests.support import FileWatch, until, until_changed


async def test_until_returns_the_value_once_the_event_says_it_holds() -> None:
    changed = asyncio.Event()
    box: list[int] = []
    checks = 0

    def check() -> int | None:
        nonlocal checks
        checks += 1
        return box[0] if box else None

    def put(v: int, then: int | None = None) -> None:
        box[:] = [v]
        changed.set()
        if then is not None:  # the next value on a later turn of the loop
            asyncio.get_running_loop().call_soon(put, then)

    asyncio.get_running_loop().call_soon(put, 0, 7)  # 0 is not truthy: the wait goes on
    assert await until(check, changed, timeout=5, what="a value") == 7
    assert checks <= 3  # once at once, then once per event: no ticking


async def test_until_takes_an_async_check_and_names_what_did_not_happen() -> None:
    async def never() -> bool:
        return False

    with pytest.raises(AssertionError, match="the sky falling: not met within 0.05 s"):
        await until(never, asyncio.Event(), timeout=0.05, what="the sky falling")


def test_a_file_watch_wakes_on_writes_and_not_on_its_own_lines(tmp_path: Path) -> None:
    log = tmp_path / "hub.log"
    log.write_text("start\n")
    watch = FileWatch(log, own=("GET /readyz",))
    with open(log, "a") as f:  # written after the watch was made, before anyone waits: not missed
        f.write("session ended\n")
    assert watch.wait(10)
    with open(log, "a") as f:
        f.write('127.0.0.1 - "GET /readyz HTTP/1.1" 200\n')
    assert not watch.wait(0.5)  # only the waiter's own request: no wake
    with open(log, "a") as f:
        f.write("reloaded\n")
    assert watch.wait(10)
    watch.close()


async def test_until_on_a_file_sees_a_line_written_by_another_thread(tmp_path: Path) -> None:
    log = tmp_path / "out.log"
    watch = FileWatch(log)  # the file does not exist yet
    writer = threading.Thread(target=lambda: log.write_text("ready\n"))
    writer.start()
    text = await until(lambda: log.exists() and "ready" in log.read_text(), watch, timeout=10, what="ready")
    assert text is True
    writer.join()


def test_until_changed_ends_when_the_process_exits(tmp_path: Path) -> None:
    log = tmp_path / "proc.log"
    log.touch()
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    with pytest.raises(AssertionError, match="exited with 0 first"):
        until_changed(log, lambda: False, timeout=60, what="a line", proc=proc)
