"""A session owned by another node, served here (DESIGN §8 "Bridge").

Events come from the session's log (`XREAD ev:{id}` after the client's last seq); commands and audio go
to the owner's inbox `in:{id}`, in order, through one sender task. The bridge says `attach` when it
opens and `detach` when its client goes, so the owner's resume and idle timers stay right, and reports
every so often how far its client has read. When the log is quiet for a block and the owner's lease is
gone, the bridge's node takes the session over (`takeover.py`), or, where it cannot, ends the session in
the log: `error{node_lost}` and `session.ended{error}`. A bridge to the old owner that reads
`session.migrated` stops its client's stream (the client resumes, and re-sends its held audio to the new
owner on its new connection).

Audio has no seq: what is in flight when a connection drops is delivered at most once (documented). What
the bridge has taken is written to the inbox even while Redis is away for a few seconds (a failover).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import TYPE_CHECKING, Protocol

from ..core.channel import ChannelFenced
from ..core.errors import ClientError, ErrorCode, HubError, SessionStateError
from ..core.events import Event, SessionMigrated, SessionStarted, parse_event
from . import keys, wire
from .errors import REDIS_DOWN
from .messages import InboxMessage

if TYPE_CHECKING:
    import redis.asyncio as aioredis

log = logging.getLogger(__name__)

REPORT_EVERY = 256     # events between two `delivered` reports
INBOX_MAXLEN = 10_000  # `MAXLEN ~` of `in:{id}`: a bound should its owner stop reading
RETRY_FIRST_S, RETRY_MAX_S = 0.05, 0.25  # writing to the inbox again while Redis is away ...
GIVE_UP_S = 30.0                         # ... for at most this long
LEASE_SLACK_MS = 20    # a quiet bridge looks at the owner again this long after its lease would end


class BridgeHost(Protocol):
    node_id: str
    client: aioredis.Redis
    blocking: aioredis.Redis
    block_ms: int
    max_message_bytes: int
    session_ttl_s: int

    bridges: int

    async def owner_alive(self, owner: str) -> bool: ...

    async def lease_left_ms(self, owner: str) -> int: ...

    async def owner_lost(self, session_id: str, owner: str) -> None: ...


class BridgedSession:
    def __init__(self, host: BridgeHost, session_id: str, owner: str, conn: str, *, ended: bool = False,
                 last_seq: int = 0, epoch: int = 0) -> None:
        self.host = host
        self.id = session_id
        self.owner = owner
        self.last_seq = last_seq                # the log's last seq when the bridge opened
        self.epoch = epoch                      # the session's takeover epoch with `owner` (RemoteRecord.epoch)
        self.conn = conn
        self.ended = ended                      # session.ended seen (or in the log already)
        self._queue: asyncio.Queue[InboxMessage | None] = asyncio.Queue()
        self._sender: asyncio.Task[None] | None = None
        self._closed = False
        self.attached = False
        self.undelivered = 0                    # messages for the owner given up on (Redis away too long)
        self._reply = ""                        # where the owner answers this bridge's attach
        self.resumed: SessionStarted | None = None  # that answer (the resume's first event)

    @property
    def live(self) -> bool:
        return not self.ended

    # -- commands: to the owner's inbox, in order ------------------------------------------------
    async def attach(self) -> None:
        """Take the session over for this client (the owner's resume window stops). The owner answers
        (`answer`) once it has applied every message of the inbox before this one."""
        self._reply = uuid.uuid4().hex
        await self.send_now(InboxMessage("attach", self.conn, reply=self._reply))
        with contextlib.suppress(*REDIS_DOWN):
            await self.host.client.hset(keys.session(self.id), "attached_node", self.host.node_id)
        self.attached = True
        self.host.bridges += 1
        self._start_sender()

    async def mark(self, timeout_s: float) -> tuple[bool, SessionStarted | None]:
        """Ask the owner how much audio it has received (`answer`), without attaching."""
        self._reply = uuid.uuid4().hex
        await self.send_now(InboxMessage("mark", self.conn, reply=self._reply))
        return await self.answer(timeout_s)

    async def answer(self, timeout_s: float) -> tuple[bool, SessionStarted | None]:
        """The owner's answer to `attach`: (True, `session.started {resumed, audio_from_ms}`), (True, None)
        when the owner no longer holds the session, (False, None) when no answer came within `timeout_s`
        (an owner that is dead, but whose lease has not run out yet)."""
        try:
            got = await self.host.blocking.blpop([keys.reply(self._reply)], timeout=max(0.01, timeout_s))
        except REDIS_DOWN as e:
            raise HubError(ErrorCode.internal, f"the cluster is unreachable ({type(e).__name__}); "
                           "resume on the session's own node") from None
        if got is None:
            return False, None
        ev = parse_event(got[1]) if got[1] else None
        return True, ev if isinstance(ev, SessionStarted) else None

    def _start_sender(self) -> None:
        if self._sender is None:
            self._sender = asyncio.get_running_loop().create_task(self._send_loop())

    async def send_now(self, msg: InboxMessage) -> None:
        """One message, in Redis when this returns (the SSE command routes answer after it)."""
        try:
            await self._write([msg])
        except REDIS_DOWN as e:
            raise HubError(ErrorCode.internal, f"the cluster is unreachable ({type(e).__name__}); "
                           "resume on the session's own node") from None

    async def _write(self, msgs: list[InboxMessage]) -> None:
        key = keys.inbox(self.id)
        pipe = self.host.client.pipeline(transaction=False)
        for m in msgs:
            fields = replace(m, to=self.owner).fields()
            pipe.xadd(key, fields, maxlen=INBOX_MAXLEN, approximate=True)  # type: ignore[arg-type]
        pipe.expire(key, self.host.session_ttl_s)  # gone with the session, if its owner is
        await pipe.execute()

    def _put(self, msg: InboxMessage) -> None:
        if self.ended:
            raise SessionStateError(ErrorCode.invalid_command, f"session '{self.id}' has ended")
        if self._closed:
            raise SessionStateError(ErrorCode.invalid_command, f"session '{self.id}' is no longer attached here")
        self._start_sender()
        self._queue.put_nowait(msg)

    def audio(self, data: bytes) -> None:
        if len(data) > self.host.max_message_bytes:
            raise ClientError(ErrorCode.payload_too_large, f"audio message of {len(data)} bytes exceeds the limit "
                              f"of {self.host.max_message_bytes}")
        if data:
            self._put(InboxMessage("audio", self.conn, data=data))

    def command(self, op: str, *, again: bool = False) -> None:
        """`again`: a stop that may repeat one the owner has (InboxMessage.again)."""
        assert op in ("flush", "stop", "keepalive", "abort")
        self._put(InboxMessage(op, self.conn, again=again))  # type: ignore[arg-type]

    def fail(self, err: HubError) -> None:
        """A transport error, reported in the session (in seq order, by the owner)."""
        self._put(InboxMessage("error", self.conn, code=err.code.value, message=err.message, fatal=err.fatal))

    def detach(self) -> None:
        """The client is gone: the owner's resume window starts (once the queue is through)."""
        if self._closed:
            return
        self._closed = True
        if self.attached:
            self.host.bridges -= 1
        if self.attached and not self.ended:
            self._queue.put_nowait(InboxMessage("detach", self.conn))
        self._queue.put_nowait(None)

    async def _send_loop(self) -> None:
        while True:
            first = await self._queue.get()
            batch = [first]
            while not self._queue.empty():
                batch.append(self._queue.get_nowait())
            msgs = [m for m in batch if m is not None]
            if msgs and not await self._deliver(msgs):
                self.undelivered += len(msgs)
            if None in batch:
                return

    async def _deliver(self, msgs: list[InboxMessage]) -> bool:
        """Write `msgs` to the inbox; while Redis is away (a primary failover: seconds) again and again, in
        order, the later messages waiting behind, for up to GIVE_UP_S. The client's own resume backs off
        longer than RETRY_MAX_S, so what its old connection sent is in the inbox before what its new one
        sends. False: given up (the messages are lost)."""
        deadline = time.monotonic() + GIVE_UP_S
        delay = RETRY_FIRST_S
        while True:
            try:
                await self._write(msgs)
                return True
            except REDIS_DOWN as e:
                if time.monotonic() + delay > deadline:
                    log.warning("bridge of session %s: %d message(s) for the owner lost: %s", self.id, len(msgs), e)
                    return False
                log.info("bridge of session %s: Redis unreachable (%s); %d message(s) for the owner wait",
                         self.id, e, len(msgs))
            await asyncio.sleep(delay)
            delay = min(2 * delay, RETRY_MAX_S)

    async def flushed(self) -> None:
        """Everything queued is in Redis (and the bridge is closed); HubError(internal) when some of it
        could not be written (Redis away for longer than GIVE_UP_S)."""
        self.detach()
        if self._sender is not None:
            await self._sender
        if self.undelivered:
            raise HubError(ErrorCode.internal, f"the cluster is unreachable; {self.undelivered} message(s) for "
                           f"session '{self.id}' were not delivered")

    async def _until_lease_end(self) -> int:
        """The next quiet read's block: `block_ms`, or less when the owner's lease ends sooner (a dead
        owner is then seen at once, not up to a block later)."""
        try:
            left = await self.host.lease_left_ms(self.owner)
        except HubError:  # (Redis away)
            return self.host.block_ms
        return max(10, min(self.host.block_ms, left + LEASE_SLACK_MS)) if left else self.host.block_ms

    # -- events: from the log --------------------------------------------------------------------
    async def events(self, after_seq: int) -> AsyncIterator[Event]:
        """Every event after `after_seq`, from the log, until `session.ended`."""
        key = keys.events(self.id)
        cursor = reported = after_seq
        block = self.host.block_ms
        while True:
            try:
                answer = await self.host.blocking.xread({key: f"0-{cursor}"}, block=block, count=512)
            except REDIS_DOWN as e:
                raise ChannelFenced(f"session {self.id}: the cluster is unreachable ({type(e).__name__})") from None
            if not answer:
                if not self.ended and not await self.host.owner_alive(self.owner):
                    await self.host.owner_lost(self.id, self.owner)
                elif not self.ended:  # the next look at the owner no later than its lease's end
                    block = await self._until_lease_end()
                continue
            block = self.host.block_ms
            for _, entries in wire.read(answer):
                for _, fields in entries:
                    ev = parse_event(fields[b"event"])
                    if isinstance(ev, SessionMigrated) and ev.to_node != self.owner:
                        # another node took the session over: this connection's client resumes (there, or
                        # anywhere), and hears of the move on a connection whose audio reaches the new owner
                        raise ChannelFenced(f"session {self.id} was taken over by {ev.to_node}")
                    cursor = ev.seq
                    yield ev
                    if ev.type == "session.ended":
                        self.ended = True
                        return
            if self.attached and cursor - reported >= REPORT_EVERY and not self._closed:
                reported = cursor
                self._queue.put_nowait(InboxMessage("delivered", self.conn, seq=cursor))
