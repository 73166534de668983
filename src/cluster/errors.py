"""What can go wrong talking to the cluster's Redis."""

from __future__ import annotations

import redis.exceptions


class ClusterUnavailable(Exception):
    """Redis did not answer (down, unreachable or too slow): the node runs local-only (DESIGN §8)."""


#: The redis-py errors that mean "Redis is not there", as opposed to a command Redis refused.
REDIS_DOWN = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError)
