"""The owner's inbox (DESIGN §8 "Bridge"): one multiplexed blocking XREAD over `in:{id}` of every
session this node logs, plus `wake:{node}`, which the node appends to when that set changes (so the
read starts over with the new set at once, without waiting out its block).

Each message is applied to the session as the same command from a local client would be (`InboxHost`);
what the command raises is reported in the session, as a local transport reports it.

`catch_up`: an HTTP + SSE request that reaches the owner itself applies first what the inbox holds and this
reader has not applied yet. Each SSE POST stands alone and the balancer spreads them over the nodes: one
answered by another node (202 once it is in `in:{id}`) and the next one answered here could otherwise be
applied in the other order (this reader's XREAD comes back later than a request on the same event loop,
the more so under load): 100 ms of audio out of order on the timeline, words garbled or lost (the
24-talker chaos run at ca83e8e, SSE talkers only). Entries are applied once, in ID order, by whichever of
the two comes first.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Protocol

from . import keys, wire
from .errors import REDIS_DOWN
from .messages import InboxMessage

if TYPE_CHECKING:
    import redis.asyncio as aioredis

log = logging.getLogger(__name__)


class InboxHost(Protocol):
    def apply(self, session_id: str, msg: InboxMessage) -> None: ...


class Inbox:
    def __init__(self, client: aioredis.Redis, node_id: str, sessions: Callable[[], Iterable[str]],
                 host: InboxHost, block_ms: int, on_health: Callable[[bool], None],
                 now: aioredis.Redis | None = None) -> None:
        self.client = client            # a connection pool whose timeout allows for `block_ms`
        self.now = now or client        # one for the non-blocking reads of `catch_up`
        self.node_id = node_id
        self.sessions = sessions
        self.host = host
        self.block_ms = block_ms
        self.on_health = on_health
        self.cursors: dict[str, bytes | str] = {}   # stream key -> last ID read
        self.wake_cursor: bytes | str = "$"

    async def run(self) -> None:
        wake = keys.wake(self.node_id)
        while True:
            live = {keys.inbox(sid): sid for sid in self.sessions()}
            self.cursors = {k: self.cursors.get(k, b"0-0") for k in live}
            streams: dict[str, bytes | str] = {**self.cursors, wake: self.wake_cursor}
            try:
                answer = await self.client.xread(streams, block=self.block_ms, count=256)  # type: ignore[arg-type]
            except REDIS_DOWN as e:
                log.debug("inbox of %s: %s", self.node_id, e)
                self.on_health(False)
                await asyncio.sleep(self.block_ms / 1000)  # Redis is down: try again after a block's time
                continue
            taken: dict[str, list[bytes]] = {}
            for key, entries in wire.read(answer):
                if key == wake:
                    self.wake_cursor = entries[-1][0]
                    continue
                sid = live.get(key)
                if sid is None:
                    self._advance(key, entries[-1][0])
                    continue
                self._apply(key, sid, entries, taken)
            if taken:
                await self._forget(taken)

    async def catch_up(self, session_id: str) -> None:
        """Apply now, in order, what `in:{id}` holds beyond what this reader has applied (an HTTP + SSE
        request on the owner goes after every one answered before it by another node). Redis away: nothing
        (the session goes on local-only, as everywhere)."""
        key = keys.inbox(session_id)
        try:
            answer = await self.now.xread({key: self.cursors.get(key, b"0-0")}, count=1024)  # type: ignore[dict-item]
        except REDIS_DOWN as e:
            log.debug("inbox of session %s: catching up: %s", session_id, e)
            return
        taken: dict[str, list[bytes]] = {}
        for k, entries in wire.read(answer):
            if k == key and entries:
                self._apply(key, session_id, entries, taken)
        if taken:
            await self._forget(taken)

    def _advance(self, key: str, entry_id: bytes | str) -> bool:
        """Move the key's cursor to `entry_id`; False when it is not past it (applied already)."""
        if _id(entry_id) <= _id(self.cursors.get(key, b"0-0")):
            return False
        self.cursors[key] = entry_id
        return True

    def _apply(self, key: str, sid: str, entries: list[wire.Entry], taken: dict[str, list[bytes]]) -> None:
        for entry_id, fields in entries:
            if not self._advance(key, entry_id):
                continue  # applied already (by `catch_up`, or by the reader while `catch_up` waited)
            msg = InboxMessage.parse(fields)
            if msg is not None and msg.to and msg.to != self.node_id:
                continue  # for the node that took the session over (this one was taken for dead): its own
            taken.setdefault(key, []).append(entry_id)
            if msg is None:
                log.warning("inbox of session %s: an entry that is no message: ignored", sid)
                continue
            try:
                self.host.apply(sid, msg)
            except Exception:
                log.exception("inbox of session %s: applying %s failed", sid, msg.op)

    async def _forget(self, taken: dict[str, list[bytes]]) -> None:
        """Applied messages leave the inbox (audio would otherwise stay there up to its MAXLEN)."""
        try:
            pipe = self.client.pipeline(transaction=False)
            for key, ids in taken.items():
                pipe.xdel(key, *ids)
            await pipe.execute()
        except REDIS_DOWN as e:
            log.debug("inbox of %s: %s", self.node_id, e)


def _id(entry_id: bytes | str) -> tuple[int, int]:
    """A stream entry ID (`<ms>-<seq>`) in order."""
    ms, _, seq = wire.as_bytes(entry_id).partition(b"-")
    return int(ms), int(seq or 0)
