"""Per-API-key request rates (key `requests_per_minute`): one algorithm, on one node as across nodes.

Fixed one-minute windows of the unix clock: every request of a key counts in the window it falls in
(a refused one too), and past `requests_per_minute` the request is refused with `rate_limited` (HTTP
429) and `Retry-After` = the whole seconds until the window ends. This node's own limiter
(`RateCounter`, in memory, used by core.auth) and the cluster's (cluster/quota.py: INCR + EXPIRE of
`rate:{key_id}:{window}` in one Redis script, DESIGN §8) count the same windows and refuse alike.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from .errors import ErrorCode, HubError

WINDOW_S = 60


@dataclass(frozen=True)
class RateWindow:
    """The window a moment falls in."""

    number: int   # unix time // WINDOW_S
    left_s: int   # whole seconds until it ends (at least 1): a refusal's Retry-After

    @classmethod
    def at(cls, now: float) -> RateWindow:
        number = int(now // WINDOW_S)
        return cls(number, max(1, math.ceil((number + 1) * WINDOW_S - now)))


def rate_refusal(per_minute: int, window: RateWindow) -> HubError:
    """The answer to a request past its key's rate (the same words on every node)."""
    return HubError(ErrorCode.rate_limited, f"more than {per_minute} requests per minute for this API key; "
                    "slow down", retry_after_s=window.left_s)


class RateCounter:
    """This node's count of each key's requests in the current window."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        """`clock`: unix time in seconds (it picks the window)."""
        self.clock = clock
        self._counts: dict[str, tuple[int, int]] = {}  # key -> (window number, requests in it)

    def hit(self, key: str, per_minute: int) -> None:
        """Count one request of `key`; HubError `rate_limited` (with `retry_after_s`) past `per_minute`."""
        if per_minute < 1:
            raise ValueError(f"per_minute must be positive, not {per_minute}")
        window = RateWindow.at(self.clock())
        number, n = self._counts.get(key, (window.number, 0))
        n = n + 1 if number == window.number else 1
        self._counts[key] = (window.number, n)
        if n > per_minute:
            raise rate_refusal(per_minute, window)
