"""Claiming the session of a dead owner (DESIGN §8 "Owner death → takeover").

A node claims with one atomic script: `owner` changes to the claimant only while `sess:{id}` still names
the old owner, the old owner's lease `node:{old}` is absent, the session has not ended and its log ends
at the seq the claimant read; in the same step it appends `session.migrated` at the next seq, sets the
session's `epoch` to that seq (an HTTP + SSE request that carries an older epoch is refused: api/binding.py)
and empties the old owner's inbox `in:{id}` (what was sent there is re-sent by the client from `audio_from_ms`). So
two claimants cannot both win, and the old owner, should it come back, finds its appends refused (the
append script checks the owner) and ends its copy.

What the claimant needs to go on is read from Redis first (`read_takeover`): the session's start
options (kept in `sess:{id}` when it started), its API key's id, and from its log the seq it ends at,
the end of the last final (where the timeline is settled) and the last utterance number.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from enum import Enum
from typing import Any

import redis.asyncio as aioredis
from pydantic import ValidationError

from ..core.commands import StartSession
from ..core.events import Event, SessionMigrated, parse_event
from . import keys, wire

# KEYS: sess, ev, node:{old owner}, in. ARGV: old owner, new owner, expected last seq, the event's JSON,
# maxlen, ttl_s. Returns {1, seq} (claimed; seq of session.migrated) or {code, last} with code: 0 the
# owner is another node now, -1 the session is gone, -2 the old owner's lease is back, -3 ended,
# -4 the log moved on (last: its last seq).
_CLAIM = """
local owner = redis.call('HGET', KEYS[1], 'owner')
if not owner then return {-1, 0} end
if owner ~= ARGV[1] then return {0, 0} end
if redis.call('EXISTS', KEYS[3]) == 1 then return {-2, 0} end
if redis.call('HGET', KEYS[1], 'ended') == '1' then return {-3, 0} end
local last = 0
local top = redis.call('XREVRANGE', KEYS[2], '+', '-', 'COUNT', 1)
if #top > 0 then last = tonumber(string.match(top[1][1], '^0%-(%d+)$')) or -1 end
if last ~= tonumber(ARGV[3]) then return {-4, last} end
local seq = last + 1
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[5], '0-' .. seq, 'event', ARGV[4])
redis.call('HSET', KEYS[1], 'owner', ARGV[2], 'attached_node', ARGV[2], 'last_seq', seq, 'epoch', seq)
redis.call('DEL', KEYS[4])
local ttl = tonumber(ARGV[6])
redis.call('EXPIRE', KEYS[1], ttl)
redis.call('EXPIRE', KEYS[2], ttl)
return {1, seq}
"""

PAGE = 256  # log entries read at a time, newest first, looking for the last final (the first: the tail)


class ClaimRefused(Enum):
    taken = 0        # another node claimed it first
    gone = -1        # the session's record expired
    owner_back = -2  # the old owner's lease is back
    ended = -3       # the session ended meanwhile
    moved_on = -4    # the log got another entry meanwhile (read again)


@dataclass(frozen=True, slots=True)
class TakeoverPoint:
    """Where a taken-over session goes on (read from Redis before the claim)."""

    start: StartSession | None  # its start options (None: not kept: it cannot be taken over)
    transport: str
    api_key: str                # the id of the API key that started it ("": auth was off)
    last_seq: int               # the log's last seq
    audio_from_ms: int          # the timeline goes on from here
    utterances: int             # the last utterance's number (the next is one more)
    ended: bool
    tail: tuple[Event, ...] = ()  # the log's newest events, oldest first (replayed by a resume here)
    promised: str = ""          # the stable_text the open utterance's last partial promised (it holds on)


async def read_takeover(client: aioredis.Redis, session_id: str, replay_audio_s: float) -> TakeoverPoint:
    raw: Any = await client.hgetall(keys.session(session_id)) or {}
    rec = {wire.as_bytes(k): wire.as_bytes(v) for k, v in raw.items()}
    start: StartSession | None = None
    if b"start" in rec:
        try:
            start = StartSession.model_validate_json(rec[b"start"])
        except ValidationError:
            start = None
    last_seq = final_end = heard = utterances = settled = 0
    found = False
    partials: list[dict[str, Any]] = []  # the partials after the last final, newest first
    ended = rec.get(b"ended") == b"1"
    top = "+"
    tail: list[Event] = []
    while not found:
        page = wire.entries(await client.xrevrange(keys.events(session_id), top, "-", count=PAGE))
        if top == "+":
            tail = [parse_event(fields[b"event"]) for _, fields in reversed(page)]
        for entry_id, fields in page:
            seq = wire.seq_of(entry_id)
            last_seq = last_seq or seq
            ev = json.loads(fields[b"event"])
            heard = max(heard, int(ev.get("end_ms") or ev.get("offset_ms") or 0))
            if ev.get("type") == "session.ended":
                ended = True
            if ev.get("type") == "transcript.partial":
                partials.append(ev)
            if ev.get("type") == "transcript.final":
                final_end = int(ev["end_ms"])
                utterances = _number(str(ev.get("utterance_id", "")))
                found = True
                break
            if ev.get("type") == "session.migrated":  # an earlier takeover: the timeline was settled there too
                settled = max(settled, int(ev.get("audio_from_ms", 0)))
        if len(page) < PAGE or found:
            break
        top = f"({page[-1][0].decode()}"
    audio_from = max(final_end, settled, heard - int(replay_audio_s * 1000))
    opened = f"u{utterances + 1}"  # the utterance open (or awaiting its final) after the last final
    promised = next((str(p.get("stable_text") or "") for p in partials if p.get("utterance_id") == opened), "")
    if audio_from > final_end:
        promised = ""  # its start is not sent again: its words are not all decoded again
    return TakeoverPoint(start, rec.get(b"transport", b"").decode(), rec.get(b"api_key", b"").decode(), last_seq,
                         audio_from, utterances, ended, tuple(tail), promised)


def _number(utterance_id: str) -> int:
    digits = utterance_id.lstrip("u")
    return int(digits) if digits.isdigit() else 0


class Claimer:
    def __init__(self, client: aioredis.Redis, maxlen: int) -> None:
        self.maxlen = maxlen
        self._script = client.register_script(_CLAIM)

    async def claim(self, session_id: str, old_owner: str, new_owner: str, point: TakeoverPoint,
                    ttl_s: int) -> SessionMigrated | ClaimRefused:
        """`session.migrated` as appended (the session is this node's now), or why not."""
        ev = SessionMigrated(session_id=session_id, seq=point.last_seq + 1, ts=time.time(), from_node=old_owner,
                             to_node=new_owner, audio_from_ms=point.audio_from_ms)
        res = await self._script(keys=[keys.session(session_id), keys.events(session_id), keys.node(old_owner),
                                       keys.inbox(session_id)],
                                 args=[old_owner, new_owner, point.last_seq, ev.to_json(), self.maxlen, ttl_s])
        code = int(res[0])
        if code == 1:
            return ev
        return ClaimRefused(code)



