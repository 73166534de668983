"""Appending to a session's event log `ev:{id}`: one atomic script, used by the owner for every batch
and by a bridging node that ends the session of a lost owner.

The script appends only when the log's last seq is the one the writer expects, so exactly one writer
can continue the log from any point: a stale owner that another node has fenced out, or a bridge that
lost the race to the owner, is refused and learns the log's real last seq. Each entry is `XADD` with the
explicit ID `0-<seq>`, so Redis itself also refuses an ID that is not above the last.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import redis.asyncio as aioredis

from ..core.events import Event
from . import keys

# KEYS: ev, sess. ARGV: expected last seq, maxlen, ttl_s (0: none), ended (0/1), writer (the owner's node
# id; "": not the owner, e.g. a node ending a lost owner's session), then (seq, json) pairs.
# Returns {1, last} when appended; {0, last} when the log's last seq was not the expected one, or the
# session's owner is no longer the writer (another node took it over); {-1, 0} when the log does not
# exist but the writer expected one (Redis lost it: restarted without data).
_APPEND = """
local last = 0
local top = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
if #top > 0 then
  last = tonumber(string.match(top[1][1], '^0%-(%d+)$')) or -1
end
local expected = tonumber(ARGV[1])
if ARGV[5] ~= '' then
  local owner = redis.call('HGET', KEYS[2], 'owner')
  if owner and owner ~= ARGV[5] then return {0, last} end
end
if last ~= expected then
  if last == 0 and expected > 0 and redis.call('EXISTS', KEYS[2]) == 0 then return {-1, 0} end
  return {0, last}
end
for i = 6, #ARGV, 2 do
  redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[2], '0-' .. ARGV[i], 'event', ARGV[i + 1])
  last = tonumber(ARGV[i])
end
redis.call('HSET', KEYS[2], 'last_seq', last)
local ttl = tonumber(ARGV[3])
if ARGV[4] == '1' then redis.call('HSET', KEYS[2], 'ended', 1) end
if ttl > 0 then
  redis.call('EXPIRE', KEYS[1], ttl)
  redis.call('EXPIRE', KEYS[2], ttl)
end
return {1, last}
"""


@dataclass(frozen=True, slots=True)
class Appended:
    ok: bool       # the events are in the log
    last_seq: int  # the log's last seq now (when not ok: what another writer left there)
    lost: bool = False  # the log is gone (Redis restarted without it)


class LogAppender:
    def __init__(self, client: aioredis.Redis, maxlen: int) -> None:
        self.maxlen = maxlen
        self._script = client.register_script(_APPEND)

    async def append(self, session_id: str, expected_last: int, events: Sequence[Event], ttl_s: int,
                     client: aioredis.Redis | None = None, writer: str = "") -> Appended:
        """Append `events` (their seqs follow `expected_last`) when the log ends at `expected_last` (and,
        with `writer`, while the session's owner is `writer`). `ttl_s` > 0 (re)sets the expiry of the log
        and the session's hash."""
        ended = any(ev.type == "session.ended" for ev in events)
        argv: list[str | int] = [expected_last, self.maxlen, ttl_s, int(ended), writer]
        for ev in events:
            argv += [ev.seq, ev.to_json()]
        res = await self._script(keys=[keys.events(session_id), keys.session(session_id)], args=argv, client=client)
        code, last = int(res[0]), int(res[1])
        return Appended(code == 1, last, code == -1)
