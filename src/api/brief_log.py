"""A logger for python-engineio / python-socketio that a client cannot flood.

Those libraries log a malformed packet (bad JSON, an empty or undecodable polling payload, ...) with
`logger.exception`: a full traceback per packet, which any client can repeat at will. Handed this object
instead of a `logging.Logger`, they get one WARNING line per problem (the exception's type, message and
where it was raised), at most `burst` lines per `per_s` seconds; what is dropped is counted and reported
with the next line that goes out. Their debug/info chatter goes to DEBUG.
"""

from __future__ import annotations

import logging
import sys
import time
import traceback
from typing import Any


class BriefLogger:
    def __init__(self, name: str, burst: int = 5, per_s: float = 10.0) -> None:
        self.log = logging.getLogger(name)
        self.burst = burst
        self.per_s = per_s
        self._window_start = time.monotonic()
        self._sent = 0
        self.suppressed = 0

    # the logging.Logger methods the libraries call
    def debug(self, msg: Any, *args: Any, **kwargs: Any) -> None:
        self.log.debug(msg, *args)

    def info(self, msg: Any, *args: Any, **kwargs: Any) -> None:
        self.log.debug(msg, *args)

    def warning(self, msg: Any, *args: Any, **kwargs: Any) -> None:
        self._brief(msg, args, with_exc=bool(kwargs.get("exc_info")))

    warn = warning

    def error(self, msg: Any, *args: Any, **kwargs: Any) -> None:
        self._brief(msg, args, with_exc=bool(kwargs.get("exc_info")))

    def exception(self, msg: Any, *args: Any, **kwargs: Any) -> None:
        self._brief(msg, args, with_exc=True)

    critical = error

    def isEnabledFor(self, level: int) -> bool:  # noqa: N802 (logging.Logger's name)
        return self.log.isEnabledFor(level)

    def _allowed(self) -> bool:
        now = time.monotonic()
        if now - self._window_start >= self.per_s:
            self._window_start, self._sent = now, 0
        if self._sent >= self.burst:
            self.suppressed += 1
            return False
        self._sent += 1
        return True

    def _brief(self, msg: Any, args: tuple[Any, ...], with_exc: bool) -> None:
        if not self._allowed():
            return
        text = str(msg) % args if args else str(msg)
        exc = sys.exc_info()[1] if with_exc else None
        if exc is not None:
            tb = traceback.extract_tb(exc.__traceback__)
            where = f" at {tb[-1].filename.rsplit('/', 1)[-1]}:{tb[-1].lineno}" if tb else ""
            text += f": {type(exc).__name__}: {str(exc)[:200]}{where}"
        if self.suppressed:
            text += f" ({self.suppressed} similar lines suppressed)"
            self.suppressed = 0
        self.log.warning("%s", text)

