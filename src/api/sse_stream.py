"""The text/event-stream of one SSE reader (DESIGN §3.4), written straight to the ASGI `send`."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime

from fastapi import Response
from starlette.types import Message, Receive, Scope, Send

from ..core.channel import ChannelFenced
from ..core.events import Event
from ..engine.service import SessionService
from ..engine.session import Session
from .http_guard import is_head

log = logging.getLogger(__name__)

PING_S = 15.0
#: The longest a POST that put events in its session's channel waits for an open event stream to send
#: them (a reader whose connection is backed up is not waited for longer).
SENT_WAIT_S = 0.5


class StreamProgress:
    """How far the open event streams of each session have written (the highest seq sent), awaitable:
    a POST that put events in a channel lets the event stream send them before its own answer goes out
    (and its access log line), so a client reading both sees the events first. One per app."""

    def __init__(self) -> None:
        self._open: dict[str, int] = {}      # session id -> event streams open on it
        self._sent: dict[str, int] = {}      # session id -> highest seq any of them has sent
        self._waiters: dict[str, list[asyncio.Future[None]]] = {}

    def opened(self, session_id: str) -> None:
        self._open[session_id] = self._open.get(session_id, 0) + 1

    def sent(self, session_id: str, seq: int) -> None:
        self._sent[session_id] = max(seq, self._sent.get(session_id, 0))
        self._wake(session_id)

    def closed(self, session_id: str) -> None:
        left = self._open.get(session_id, 1) - 1
        if left > 0:
            self._open[session_id] = left
        else:
            self._open.pop(session_id, None)
            self._sent.pop(session_id, None)
        self._wake(session_id)

    def _wake(self, session_id: str) -> None:
        for f in self._waiters.pop(session_id, ()):
            if not f.done():
                f.set_result(None)

    async def until_sent(self, session_id: str, seq: int, timeout_s: float = SENT_WAIT_S) -> bool:
        """Wait until an open event stream of the session has sent `seq`: True then (or at once when no
        stream is open); False when `timeout_s` passed first."""
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout_s
        while self._open.get(session_id) and self._sent.get(session_id, 0) < seq:
            f: asyncio.Future[None] = loop.create_future()
            self._waiters.setdefault(session_id, []).append(f)
            try:
                await asyncio.wait_for(f, max(0.0, end - loop.time()))
            except TimeoutError:
                return False
        return True


def sse_frame(ev: Event) -> bytes:
    """One SSE message: `id: <seq>`, `event: <type>`, `data: <event JSON>` (compact JSON: one line)."""
    return f"id: {ev.seq}\r\nevent: {ev.type}\r\ndata: {ev.to_json()}\r\n\r\n".encode()


class EventStream(Response):
    """The text/event-stream of one reader, written straight to the ASGI `send`: one pre-encoded frame
    per event, written by the task that takes it from the session's channel (no queue or extra task in
    between); a keep-alive comment every PING_S; the client going away (http.disconnect) ends it, and
    the session is detached when this was its last reader."""

    HEADERS = [(b"content-type", b"text/event-stream; charset=utf-8"), (b"cache-control", b"no-store"),
               (b"connection", b"keep-alive"), (b"x-accel-buffering", b"no")]

    media_type = "text/event-stream"

    def __init__(self, session_id: str, events: Callable[[], AsyncIterator[Event]], on_close: Callable[[], None],
                 ping_s: float = PING_S, progress: StreamProgress | None = None) -> None:
        # no Response.__init__: there is no body to render (and no content-length to announce)
        self.status_code = 200
        self.background = None
        self.raw_headers = list(self.HEADERS)
        self.session_id = session_id
        self.events = events       # the session's events after the reader's Last-Event-ID
        self.on_close = on_close   # the reader is gone
        self.ping_s = ping_s
        self.progress = progress  # told each seq this stream has sent

    @classmethod
    def local(cls, service: SessionService, session: Session, after: int, ping_s: float = PING_S,
              progress: StreamProgress | None = None) -> EventStream:
        """A session of this node: the session is detached when this was its last reader."""
        attachment = service.attachment(session.id)

        def detach_if_last() -> None:
            if service.is_live(session.id) and session.channel.readers == 0:
                service.detach(session.id, attachment)

        return cls(session.id, lambda: service.events(session.id, after), detach_if_last, ping_s, progress)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
        if is_head(scope):  # headers only: a HEAD must not open a stream that never ends (nor attach)
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            return
        writer = asyncio.create_task(self._write(send))
        watcher = asyncio.create_task(self._until_disconnect(receive))
        pinger = asyncio.create_task(self._ping(send)) if self.ping_s > 0 else None
        try:
            await asyncio.wait((writer, watcher), return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (writer, watcher, pinger):
                if task is not None and not task.done():
                    task.cancel()
            for task in (writer, watcher, pinger):
                if task is not None:
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await task
        if writer.done() and not writer.cancelled():
            if writer.exception() is not None:
                log.error("SSE stream of session %s failed", self.session_id, exc_info=writer.exception())
            await send({"type": "http.response.body", "body": b"", "more_body": False})  # the stream ends here
        if self.background is not None:
            await self.background()

    async def _write(self, send: Send) -> None:
        sub = self.events()
        progress = self.progress
        if progress is not None:
            progress.opened(self.session_id)
        try:
            async for ev in sub:
                await send({"type": "http.response.body", "body": sse_frame(ev), "more_body": True})
                if progress is not None:
                    progress.sent(self.session_id, ev.seq)
        except ChannelFenced as e:  # another node took the session over: the stream ends, EventSource
            log.info("SSE: %s", e)  # reconnects with Last-Event-ID (to any node)
        finally:
            aclose = getattr(sub, "aclose", None)
            if aclose is not None:
                await aclose()
            if progress is not None:
                progress.closed(self.session_id)
            self.on_close()

    @staticmethod
    async def _until_disconnect(receive: Receive) -> None:
        while True:
            message: Message = await receive()
            if message["type"] == "http.disconnect":
                return

    async def _ping(self, send: Send) -> None:
        while True:
            await asyncio.sleep(self.ping_s)
            comment = f": ping - {datetime.now(UTC)}\r\n\r\n".encode()
            await send({"type": "http.response.body", "body": comment, "more_body": True})
