"""Admission across nodes: per-API-key session quotas and request rates in Redis (DESIGN §8 "Admission").

Node capacity stays local (`core.admission`, `/readyz`); what must hold across nodes is kept here.

Keys (each under the optional `prefix`, e.g. "asrhub:"):

- `quota:{key_id}`: a sorted set, one member per live session of that API key on any node.
  The member is the session id (a uuid4 hex, unique across nodes). The score is the expiry, in ms of
  the Redis server's clock (`TIME`), of the owning node's lease on that session: now + `ttl_ms` at the
  last `acquire` or `renew`. A node renews all its members at once (`renew`) as it renews its own
  lease; a node that dies, stalls or is cut off stops renewing, and its members fall out of the count
  when their lease would have expired (the next `acquire` drops every member whose score is past).
  The key expires with its latest member, so nothing is left behind once a key's sessions are gone.
- `rate:{key_id}:{minute}`: the request count of one fixed one-minute window (`minute` = Unix time
  // 60 on the calling node's clock, which NTP keeps within milliseconds of the others), expiring at
  the end of its window.

`key_id` is `core.auth.key_id(key)`: the key's name or a digest, never the secret. Every time used in
the quota comes from the Redis server inside a script, so node clocks do not matter there.

Every call raises `ClusterUnavailable` when Redis does not answer within `timeout_s` (or refuses the
connection): the caller then admits by its local limits only (DESIGN §8 "Redis down").
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import NamedTuple

import redis.asyncio as aioredis

from ..core.rate import RateWindow, rate_refusal
from .errors import guarded

# The Redis server's clock in ms (TIME answers seconds and microseconds).
_NOW_MS = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
"""

# The key lives as long as its latest lease: PEXPIREAT to the highest score.
_EXPIRE_WITH_LAST = """
local function expire_with_last(key)
  local top = redis.call('ZRANGE', key, -1, -1, 'WITHSCORES')
  if top[2] then redis.call('PEXPIREAT', key, top[2]) end
end
"""

# KEYS[1] quota:{key_id}; ARGV: session id, limit, ttl_ms. Returns {admitted (0|1), count after}.
# A session already counted is admitted again (its lease renewed) without taking a second slot.
_ACQUIRE = _NOW_MS + _EXPIRE_WITH_LAST + """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local n = redis.call('ZCARD', KEYS[1])
if not redis.call('ZSCORE', KEYS[1], ARGV[1]) then
  if n >= tonumber(ARGV[2]) then
    return {0, n}
  end
  n = n + 1
end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[1])
expire_with_last(KEYS[1])
return {1, n}
"""

# KEYS[i] quota:{key_id} of entry i; ARGV[1] ttl_ms, ARGV[i + 1] the session id of entry i.
# Renews the entries still held (ZADD XX); returns the 1-based indices of those that were not
# (released, or their lease had already expired: such a member is removed, it no longer counts).
_RENEW = _NOW_MS + _EXPIRE_WITH_LAST + """
local expiry = now + tonumber(ARGV[1])
local gone = {}
for i, key in ipairs(KEYS) do
  local member = ARGV[i + 1]
  local score = redis.call('ZSCORE', key, member)
  if score and tonumber(score) > now then
    redis.call('ZADD', key, 'XX', expiry, member)
    expire_with_last(key)
  else
    if score then redis.call('ZREM', key, member) end
    gone[#gone + 1] = i
  end
end
return gone
"""

# KEYS[1] quota:{key_id}. The sessions whose lease has not expired.
_COUNT = _NOW_MS + """
return redis.call('ZCOUNT', KEYS[1], string.format('(%d', now), '+inf')
"""

# KEYS[1] rate:{key_id}:{minute}; ARGV[1] seconds until the window's end. Returns the count so far.
_HIT = """
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
return n
"""


class QuotaEntry(NamedTuple):
    """One session counted against its API key's quota (a plain (key_id, session_id) tuple will do)."""

    key_id: str
    session_id: str


class KeyQuota:
    """Per-API-key session quotas that hold across every node sharing one Redis."""

    def __init__(self, redis: aioredis.Redis, *, prefix: str = "", timeout_s: float | None = 1.0) -> None:
        """Arguments:
          redis: The node's client (`redis.asyncio.Redis`). Its socket timeouts apply as well.
          prefix: Prepended to every key, to share one Redis database with other applications.
          timeout_s: Longest wait for one call before Redis counts as down (`ClusterUnavailable`);
            `cluster.connect_timeout_s` in the config. None: the client's socket timeouts only.
        """
        self.redis = redis
        self.prefix = prefix
        self.timeout_s = timeout_s
        self._acquire = redis.register_script(_ACQUIRE)
        self._renew = redis.register_script(_RENEW)
        self._count = redis.register_script(_COUNT)

    def key(self, key_id: str) -> str:
        """The Redis key of an API key's quota set."""
        return f"{self.prefix}quota:{key_id}"

    async def acquire(self, key_id: str, session_id: str, limit: int, ttl_ms: int) -> bool:
        """Count a new session against its key's quota, atomically across nodes.

        Arguments:
          key_id: The API key's id (`core.auth.key_id`).
          session_id: The new session's id; the set's member.
          limit: The key's session quota (its `max_sessions`, else `limits.max_sessions_per_key`).
          ttl_ms: How long the slot holds without a `renew`: the node's lease (`cluster.lease_ms`).

        Returns:
          True when admitted (or already counted); False when the key already has `limit` live
          sessions across the cluster.

        Raises:
          ClusterUnavailable: Redis did not answer; admit by local limits. The call may still have
            reached Redis and taken the slot: unrenewed, it frees itself after `ttl_ms`.
        """
        if limit < 1 or ttl_ms < 1:
            raise ValueError(f"limit and ttl_ms must be positive (limit={limit}, ttl_ms={ttl_ms})")
        res = await guarded(self._acquire(keys=[self.key(key_id)], args=[session_id, limit, ttl_ms]),
                            "quota acquire", self.timeout_s)
        return bool(res[0])

    async def renew(self, entries: Iterable[tuple[str, str]], ttl_ms: int) -> list[QuotaEntry]:
        """Extend the slots of this node's live sessions, in one round trip (one script call).

        Arguments:
          entries: (key_id, session_id) of every live session this node counts.
          ttl_ms: The new lease from now (Redis's clock), as in `acquire`.

        Returns:
          The entries that were no longer held (released, or their lease had expired while this node
          did not renew, e.g. Redis restarted or the node stalled). They are not re-added: the caller
          may `acquire` them again (a running session is never ended for lack of a slot).
        """
        if ttl_ms < 1:
            raise ValueError(f"ttl_ms must be positive, not {ttl_ms}")
        items = [QuotaEntry(k, s) for k, s in entries]
        if not items:
            return []
        gone = await guarded(self._renew(keys=[self.key(e.key_id) for e in items],
                                         args=[ttl_ms, *(e.session_id for e in items)]),
                             "quota renew", self.timeout_s)
        return [items[int(i) - 1] for i in gone]

    async def release(self, key_id: str, session_id: str) -> None:
        """A session ended: free its slot at once (releasing a slot not held does nothing)."""
        await guarded(self.redis.zrem(self.key(key_id), session_id), "quota release", self.timeout_s)

    async def count(self, key_id: str) -> int:
        """Live sessions of this key across the cluster (those whose lease has not expired)."""
        return int(await guarded(self._count(keys=[self.key(key_id)]), "quota count", self.timeout_s))


class KeyRateLimit:
    """Per-API-key requests per minute across nodes: fixed one-minute windows, INCR + EXPIRE in one
    script (so a counter never lives without its expiry)."""

    def __init__(self, redis: aioredis.Redis, *, prefix: str = "", timeout_s: float | None = 1.0,
                 clock: Callable[[], float] = time.time) -> None:
        """Arguments:
          redis: The node's client (`redis.asyncio.Redis`).
          prefix: Prepended to every key, as in `KeyQuota`.
          timeout_s: Longest wait for one call before Redis counts as down (`ClusterUnavailable`).
          clock: Unix time in seconds; picks the window (`time.time`).
        """
        self.redis = redis
        self.prefix = prefix
        self.timeout_s = timeout_s
        self.clock = clock
        self._hit = redis.register_script(_HIT)

    def key(self, key_id: str, minute: int) -> str:
        """The Redis key of one window's counter."""
        return f"{self.prefix}rate:{key_id}:{minute}"

    async def hit(self, key_id: str, per_minute: int) -> None:
        """Count one request of this key; refuse it past `per_minute` in the current window.

        Arguments:
          key_id: The API key's id (`core.auth.key_id`).
          per_minute: The key's `requests_per_minute`.

        Raises:
          HubError: `rate_limited`, with `retry_after_s` = seconds until the window ends.
          ClusterUnavailable: Redis did not answer.
        """
        if per_minute < 1:
            raise ValueError(f"per_minute must be positive, not {per_minute}")
        window = RateWindow.at(self.clock())  # the same windows and refusal as this node's RateCounter
        n = await guarded(self._hit(keys=[self.key(key_id, window.number)], args=[window.left_s + 1]),
                          "rate limit", self.timeout_s)
        if int(n) > per_minute:
            raise rate_refusal(per_minute, window)
