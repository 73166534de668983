"""Typed errors of the cluster layer (DESIGN §8 "Redis down"), and the one place that turns Redis's
own connection failures into them."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ReadOnlyError
from redis.exceptions import TimeoutError as RedisTimeoutError

T = TypeVar("T")

#: What "Redis is down" looks like from redis-py: refused/reset connections (BusyLoadingError is one),
#: a socket timeout, a replica that no longer takes writes, and our own deadline on the whole call.
REDIS_DOWN: tuple[type[BaseException], ...] = (RedisConnectionError, RedisTimeoutError, ReadOnlyError,
                                               OSError, TimeoutError)


class ClusterUnavailable(Exception):
    """Redis did not answer (refused, reset, or slower than the call's timeout). The caller falls back
    to local-only: running sessions go on, new sessions are admitted by this node's own limits, and
    `/readyz` reports `cluster: "degraded"`. The Redis exception is the `__cause__`."""


async def guarded(call: Awaitable[T], what: str, timeout_s: float | None) -> T:
    """Await one Redis call (or pipeline) within `timeout_s` (None: the client's own socket timeouts
    only); a Redis outage becomes ClusterUnavailable naming `what` was being done. Other Redis errors
    (a wrong command, a script error) are bugs and propagate as they are."""
    try:
        async with asyncio.timeout(timeout_s):
            return await call
    except REDIS_DOWN as e:
        detail = str(e) or type(e).__name__
        if isinstance(e, TimeoutError):
            detail = f"no answer within {timeout_s} s"
        raise ClusterUnavailable(f"Redis unavailable ({what}): {detail}") from e
