"""A test's server process (redis-server, redis-sentinel) whose output is read line by line as it comes:
a thread reads its stdout pipe, appends each line to the log file, and wakes whoever waits for a line
(`wait_for`). So a test waits on what the process says ("Ready to accept connections", "+monitor",
"+slave") instead of asking it again and again."""

from __future__ import annotations

import subprocess
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")


class ProcLog:
    def __init__(self, args: Sequence[str], log: Path) -> None:
        """Start `args` with stdout and stderr to a pipe; every line also goes to `log` (appended)."""
        self.path = log
        self.proc = subprocess.Popen(list(args), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self.lines: list[str] = []
        self._eof = False
        self._changed = threading.Condition()
        self._reader = threading.Thread(target=self._read, name=f"log {log.name}", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        with open(self.path, "ab") as log:
            for raw in self.proc.stdout:
                log.write(raw)
                log.flush()
                with self._changed:
                    self.lines.append(raw.decode(errors="replace"))
                    self._changed.notify_all()
        with self._changed:
            self._eof = True
            self._changed.notify_all()

    def mark(self) -> int:
        """Where the output is now: `wait_for(since=mark)` looks only at lines after it."""
        with self._changed:
            return len(self.lines)

    def wait_for(self, check: Callable[[list[str]], T], *, since: int = 0, timeout: float = 30.0,
                 what: str = "the line") -> T:
        """Block until `check(lines since `since`)` is truthy (checked at once, then on each new line) and
        return its value. RuntimeError naming `what`, with the end of the output, if the process closes
        its output first or after `timeout` s."""
        with self._changed:
            self._changed.wait_for(lambda: self._eof or check(self.lines[since:]), timeout)
            value, eof = check(self.lines[since:]), self._eof
        if value:
            return value
        cause = "the process ended its output first" if eof else f"not within {timeout:g} s"
        raise RuntimeError(f"{what}: {cause}:\n{self.tail()}")

    def has(self, marker: str, *, since: int = 0, timeout: float = 30.0) -> str:
        """Wait for the first line (after `since`) that holds `marker`; that line."""
        return self.wait_for(lambda lines: next((ln for ln in lines if marker in ln), ""), since=since,
                             timeout=timeout, what=repr(marker))

    def tail(self, n: int = 30) -> str:
        with self._changed:
            return "".join(self.lines[-n:])

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after 10 s; the reader ends with the output."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._reader.join(10)
