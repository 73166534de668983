"""Sessions another node owns, as this node finds and serves them (DESIGN §8 "Bridge"): the record
Redis keeps of a session (`find`), a bridge to it (`bridge.py`) and the owner's answer to a resume
through it. An owner that does not answer is dead or slow: its lease gone, the session is taken over here
(`lost.py`); else the resume is refused `node_lost` with `retry_after_ms`, what is left of the lease.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from ..core.errors import ClientError, ErrorCode, HubError, SessionStateError
from ..engine.resume_point import resume_answer
from . import keys, wire
from .bridge import BridgedSession, BridgeHost
from .errors import REDIS_DOWN

if TYPE_CHECKING:
    from ..engine.service import SessionService

ANSWER_SLACK_MS = 50   # an attach's answer is waited for the owner's lease's life and this (at most lease_ms / 3)


@dataclass(frozen=True, slots=True)
class RemoteRecord:
    """What Redis says of a session (`sess:{id}`)."""

    session_id: str
    owner: str
    last_seq: int
    first_seq: int     # the oldest seq the log still holds (0: none)
    ended: bool
    api_key: str = ""  # the id of the API key that started it ("": auth was off)
    epoch: int = 0     # the seq of its latest `session.migrated` (0: never taken over), set by the claim


class RemoteHost(BridgeHost, Protocol):
    """What serving another node's session needs of this node (read at call time)."""

    service: SessionService
    lease_ms: int
    reached_at: float  # monotonic time Redis answered again after a gap

    async def take_over(self, session_id: str, owner: str) -> bool: ...

    async def claim_settled(self, session_id: str) -> bool: ...


class RemoteSessions:
    def __init__(self, host: RemoteHost) -> None:
        self.host = host
        self._conns = itertools.count(1)

    async def find(self, session_id: str) -> RemoteRecord | None:
        try:
            pipe = self.host.client.pipeline(transaction=False)
            pipe.hgetall(keys.session(session_id))
            pipe.xrange(keys.events(session_id), "-", "+", count=1)
            raw_rec, raw_first = await pipe.execute()
        except REDIS_DOWN as e:
            raise HubError(ErrorCode.internal, f"the cluster is unreachable ({type(e).__name__}); the session "
                           f"'{session_id}' can be resumed only on its own node now") from None
        rec = {bytes(k): bytes(v) for k, v in (raw_rec or {}).items()}
        if b"owner" not in rec:
            return None
        first = wire.entries(raw_first)
        first_seq = wire.seq_of(first[0][0]) if first else 0
        return RemoteRecord(session_id, rec[b"owner"].decode(), int(rec.get(b"last_seq", b"0")), first_seq,
                            rec.get(b"ended") == b"1", rec.get(b"api_key", b"").decode(),
                            int(rec.get(b"epoch", b"0") or 0))

    async def resume(self, session_id: str, last_seq: int | None, *, attach: bool = True) -> BridgedSession | None:
        """A client's resume of a session this node does not hold: a bridge to its owner (`bridge`), or None
        when this node holds the session now and serves the client from it, not through a bridge to its
        own inbox: its owner's lease was gone, and it was taken over here before anything else (no word
        to the dead owner, no wait for its answer), or once the owner had not answered."""
        h = self.host
        rec = await self.find(session_id)
        if rec is not None and not rec.ended and rec.owner != h.node_id and not await self.owner_alive(rec.owner):
            await h.take_over(session_id, rec.owner)
            rec = None  # (read again: a node whose claim came first owns it)
        if self.served_here(session_id, last_seq):
            return None
        return await self._open(session_id, last_seq, attach=attach, found=rec, here=True)

    def served_here(self, session_id: str, last_seq: int | None) -> bool:
        """The session is this node's (taken over just now) and its events after `last_seq` are all held
        here (a client further behind is served from the log, through a bridge)."""
        s = self.host.service.plane(session_id)
        return s is not None and (last_seq is None or (last_seq <= s.channel.last_seq
                                                       and s.channel.can_replay(last_seq)))

    async def bridge(self, session_id: str, last_seq: int | None, *, attach: bool = True,
                     retake: bool = True) -> BridgedSession:
        """Serve here a session another node owns: its events after `last_seq` (checked to be in its log;
        None: commands only), commands to its owner; `attach`: this client takes the session over, and the
        bridge holds the owner's answer (`resumed`: the resume's first event). An owner that does not
        answer is dead or slow: the session is taken over here when its lease is gone (`retake`), else the
        resume is refused with when to try again (`_unanswered`)."""
        bridge = await self._open(session_id, last_seq, attach=attach, retake=retake)
        assert bridge is not None
        return bridge

    async def _open(self, session_id: str, last_seq: int | None, *, attach: bool = True, retake: bool = True,
                    found: RemoteRecord | None = None, here: bool = False) -> BridgedSession | None:
        """`bridge`; `found`: the session's record, read just now (its owner checked); `here`: None when the
        session is this node's now (taken over) and `served_here`."""
        h = self.host
        rec = found or await self.find(session_id)
        if found is None and rec is not None and attach and not rec.ended and rec.owner != h.node_id \
                and not await self.owner_alive(rec.owner) and await h.take_over(session_id, rec.owner):
            rec = await self.find(session_id)  # this node's now (or the node that claimed it first)
        if rec is not None and rec.owner == h.node_id and not h.service.holds(session_id) \
                and await h.claim_settled(session_id):
            rec = await self.find(session_id)  # (claimed here just now)
        if here and self.served_here(session_id, last_seq):
            return None
        if rec is None or (rec.owner == h.node_id and not h.service.holds(session_id)):
            # (ours but gone from here: this node restarted)
            raise ClientError(ErrorCode.session_not_found, f"no session '{session_id}' to resume (expired or unknown)")
        if last_seq is not None and (last_seq > rec.last_seq or (rec.first_seq and rec.first_seq > last_seq + 1)):
            raise SessionStateError(ErrorCode.invalid_command, f"cannot resume from seq {last_seq}: the cluster holds "
                              f"events {rec.first_seq} to {rec.last_seq}")
        bridge = BridgedSession(h, session_id, rec.owner, f"{h.node_id}#{next(self._conns)}", ended=rec.ended,
                                last_seq=rec.last_seq, epoch=rec.epoch)
        if attach and not rec.ended:
            left = await self.lease_left_ms(rec.owner)
            await bridge.attach()
            answered, bridge.resumed = await bridge.answer(min(left + ANSWER_SLACK_MS, h.lease_ms / 3) / 1000)
            if not answered and await self._unanswered(bridge, rec.owner, retake):
                return await self._open(session_id, last_seq, retake=False, here=here)
        return bridge

    async def _unanswered(self, bridge: BridgedSession, owner: str, retake: bool) -> bool:
        """The owner did not answer an attach: dead (its lease not run out yet) or too slow. True when the
        session has a live owner again (this node took it over, or a node whose claim came first): bridge
        to it (or, when the session cannot move, to end it: `node_lost`, `events`). False when that was
        done already: the bridge ends the session. Else raises the refusal, `node_lost` with `retry_after_ms` = what is left of the lease
        (the client resumes then, and the node it reaches takes the session over)."""
        left = await self.lease_left_ms(owner)
        if not left and not retake:
            return False
        bridge.detach()  # (after the attach, should the owner be slow but alive)
        if not left:  # (a session that cannot move: the bridge opened again ends it)
            await self.host.take_over(bridge.id, owner)
            return True
        raise HubError(ErrorCode.node_lost, f"the node computing session '{bridge.id}' ({owner}) does not answer; "
                       f"resume in {left} ms, when its lease has run out and the session can move",
                       retry_after_ms=left)

    async def audio_received(self, bridge: BridgedSession) -> int | None:
        """How much audio the owner of a bridged session has received, once it has applied every message
        written to its inbox before this call (a `mark`); None: it did not answer within the lease's life
        (at most lease_ms / 3), or no longer holds the session."""
        if bridge.ended:
            return None
        left = await self.lease_left_ms(bridge.owner)
        answered, ev = await bridge.mark(min(left + ANSWER_SLACK_MS, self.host.lease_ms / 3) / 1000)
        return ev.audio_from_ms if answered and ev is not None else None

    async def held_audio_answer(self, bridge: BridgedSession) -> int | None:
        """An HTTP + SSE resume (`held_audio`) of a session another node owns: how much audio it has received
        (`audio_received`). An owner that does not answer is dead or slow, as for a resume on the other wires
        (`_unanswered`): its lease gone, the session is taken over here first and the answer is where the new
        timeline goes on; else the resume is refused with when to try again. The client sends nothing live
        before it knows where the timeline stands: audio sent on after a reply without the answer reached
        the node that took the session over ahead of the held audio sent again from `audio_from_ms` (twice on
        the timeline, out of order)."""
        heard = await self.audio_received(bridge)
        if heard is not None or bridge.ended:
            return heard
        await self._unanswered(bridge, bridge.owner, retake=True)  # (refused unless the lease is gone)
        # taken over here: the claim emptied the inbox, the timeline is as this node holds it
        answer = resume_answer(self.host.service, bridge.id)
        return answer.audio_from_ms if answer is not None else None  # (None: another node's claim came first)

    async def lease_left_ms(self, owner: str) -> int:
        """How long the lease `node:{owner}` lives on (0: gone)."""
        try:
            left = int(await self.host.client.pttl(keys.node(owner)))
        except REDIS_DOWN as e:
            raise HubError(ErrorCode.internal, f"the cluster is unreachable ({type(e).__name__}); try again") from None
        return self.host.lease_ms if left == -1 else max(0, left)

    async def owner_alive(self, owner: str) -> bool:
        if time.monotonic() - self.host.reached_at < self.host.lease_ms / 1000:
            return True  # Redis was away from here just now: it was from the owner too (its lease comes back)
        try:
            return bool(await self.host.client.exists(keys.node(owner)))
        except REDIS_DOWN:
            return True  # not known: Redis itself is away (a node is not declared lost on that)
