"""Bounds on how much of a request head the HTTP server reads, and for how long, around uvicorn's own
httptools protocol (composed, not subclassed: uvicorn's protocol classes are not a public API).

httptools (llhttp) accumulates a request's headers however long they are, and uvicorn hands them to
the app only once they are complete: 16 MiB of headers would be read into memory before the app's
431 (http_guard.HeaderLimitMiddleware) could say no. `HeadBoundProtocol` is the asyncio protocol of
each connection: it runs a parser of its own (httptools' public `HttpRequestParser`, which only marks
where each request head begins and ends) over the bytes before it hands them to uvicorn's protocol,
and counts the bytes of each request head as they arrive (a read that completes the head does not
count: bodies are not heads). Past `head_limit` it answers 431 `headers_too_large` itself, hands
uvicorn nothing more, and reads and drops what the client still sends for a short while (a lingering
close, so the client sees the answer rather than a reset), then closes. The precise caps
(server.max_header_bytes / server.max_headers) stay with the middleware; `head_limit` sits above them
with room for a long request line.

A request head must also be complete within `head_timeout_s` (server.header_timeout_s) of its first
byte (or of the connection, for its first request): a client that drips header bytes is answered 408
and closed, one that connects and sends nothing is closed (uvicorn's keep-alive timeout only covers
the time between requests).

A request body must keep coming too: it has `head_timeout_s` plus one second per `MIN_BODY_RATE` bytes
received to be complete (as Apache's mod_reqtimeout `body=...,MinRate=...`). A client that drips a body (a
slow POST, "R.U.D.Y.") is answered 408 while the app has not answered yet (the app sees the client gone),
else closed; either way the connection is not held for as long as the client likes.

Once a request upgrades the connection (WebSocket), uvicorn gives the transport to its WebSocket
protocol, and this one sees no more of it; after a head this parser cannot read, uvicorn's own answers
(400) and this one only passes the bytes on.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
from typing import Any

import httptools

log = logging.getLogger(__name__)

HEAD_SLACK = 64 * 1024   # request line, header line framing, ...
LINGER_S = 1.0           # after the answer: drop what still comes until this long without data
LINGER_MAX_BYTES = 64 * 1024 * 1024
MIN_BODY_RATE = 1024     # bytes/s: each KiB of a request body buys its sender one more second


@functools.cache
def _uvicorn_httptools() -> type[asyncio.Protocol]:
    """uvicorn's httptools protocol, by the name its Config gives `http="httptools"` (built, not extended)."""
    from uvicorn.config import HTTP_PROTOCOLS
    from uvicorn.importer import import_from_string

    return import_from_string(HTTP_PROTOCOLS["httptools"])  # type: ignore[no-any-return]


class HeadBoundProtocol(asyncio.Protocol):
    """One connection: bounds its request heads, and passes every byte and transport event to `inner`
    (uvicorn's protocol, made with the arguments uvicorn makes this one with)."""

    head_limit = 32 * 1024 + HEAD_SLACK
    head_timeout_s = 30.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.inner: asyncio.Protocol = _uvicorn_httptools()(*args, **kwargs)
        self._parser = httptools.HttpRequestParser(self)  # calls on_message_begin / on_headers_complete
        self._watching = True    # False once the connection upgraded, or its bytes are no HTTP this parser reads
        self._in_head = True
        self._head_bytes = 0
        self._refused = False
        self._dropped = 0
        self._linger: asyncio.TimerHandle | None = None
        self._head_timer: asyncio.TimerHandle | None = None
        self._body_timer: asyncio.TimerHandle | None = None
        self._body_since = 0.0   # when this request's head completed (its body's clock)
        self._body_bytes = 0
        self._inner_lost = False
        self.transport: asyncio.Transport | None = None
        self.client: tuple[str, int] | None = None

    # -- asyncio.Protocol: this protocol's checks, then uvicorn's ------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # (uvloop's transports are not asyncio's classes)
        peer = transport.get_extra_info("peername")
        self.client = (str(peer[0]), int(peer[1])) if isinstance(peer, tuple) and len(peer) >= 2 else None
        self.inner.connection_made(transport)
        self._arm_head_timer()  # a connection that never completes a request head is not held forever

    def data_received(self, data: bytes) -> None:
        if self._refused:
            self._drop(len(data))
            return
        if self._watching:
            try:
                self._parser.feed_data(data)  # at most one socket read (256 KiB): the callbacks below run
            except httptools.HttpParserUpgrade:
                self._watching = False  # uvicorn hands the transport to its WebSocket protocol
            except httptools.HttpParserError:
                self._watching = False  # uvicorn's parser refuses it too, and answers 400
                self._cancel(self._head_timer)
            if self._in_head and self._watching and not self._closing():  # this request's head is not complete
                self._head_bytes += len(data)
                if self._head_bytes > self.head_limit:
                    self._refuse()
                    return
        self.inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self.inner.eof_received()

    def pause_writing(self) -> None:
        self.inner.pause_writing()

    def resume_writing(self) -> None:
        self.inner.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel(self._linger)
        self._cancel(self._head_timer)
        self._cancel(self._body_timer)
        if not self._inner_lost:
            self._inner_lost = True
            self.inner.connection_lost(exc)

    # -- the parser's callbacks: where each request head begins and ends ----------------------------------
    def on_message_begin(self) -> None:
        self._in_head = True
        self._head_bytes = 0
        self._arm_head_timer()

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._cancel(self._head_timer)
        self._head_timer = None
        self._body_since = asyncio.get_running_loop().time()
        self._body_bytes = 0
        self._cancel(self._body_timer)
        self._body_timer = asyncio.get_running_loop().call_later(self.head_timeout_s, self._body_check)

    def on_body(self, body: bytes) -> None:
        self._body_bytes += len(body)

    def on_message_complete(self) -> None:
        self._cancel(self._body_timer)
        self._body_timer = None

    # -- bounds ------------------------------------------------------------------------------------------
    def _closing(self) -> bool:
        return self.transport is None or self.transport.is_closing()

    def _arm_head_timer(self) -> None:
        self._cancel(self._head_timer)
        self._head_timer = asyncio.get_running_loop().call_later(self.head_timeout_s, self._head_timed_out)

    def _head_timed_out(self) -> None:
        """No complete request head within head_timeout_s (a slow drip of header bytes, or nothing):
        408 when part of a head came, else a quiet close."""
        self._head_timer = None
        if not self._in_head or self._refused or not self._watching or self._closing():
            return
        assert self.transport is not None
        if self._head_bytes == 0:
            self.transport.close()
            return
        log.info("%s:%s: request head not complete within %g s; closing", *(self.client or ("?", 0)),
                 self.head_timeout_s)
        self._answer(408, "Request Timeout", "invalid_command",
                     f"request headers were not complete within {self.head_timeout_s:g} s")
        self._refused = True
        self._drop(0)

    def _body_check(self) -> None:
        """The body's time is up unless what came since bought more (MIN_BODY_RATE)."""
        self._body_timer = None
        if self._refused or not self._watching or self._closing():
            return
        loop = asyncio.get_running_loop()
        due = self._body_since + self.head_timeout_s + self._body_bytes / MIN_BODY_RATE
        if loop.time() < due:
            self._body_timer = loop.call_later(due - loop.time(), self._body_check)
            return
        assert self.transport is not None
        message = (f"request body not complete in time ({self._body_bytes} bytes in "
                   f"{loop.time() - self._body_since:.0f} s; at least {MIN_BODY_RATE} bytes/s after the first "
                   f"{self.head_timeout_s:g} s)")
        log.info("%s:%s: %s; closing", *(self.client or ("?", 0)), message)
        self._refused = True
        cycle = getattr(self.inner, "cycle", None)  # uvicorn's request in progress: answered already?
        if cycle is not None and not getattr(cycle, "response_started", True):
            self._answer(408, "Request Timeout", "invalid_command", message)
        # uvicorn's side as if the client had gone: the app's receive() says http.disconnect, nothing it sends
        # is written after the 408
        self._inner_lost = True
        self.inner.connection_lost(None)
        self._half_close()

    def _half_close(self) -> None:
        """After a refusal the client may still be sending: end our side once the answer is out (FIN), drop what
        still comes, and close LINGER_S later whatever it sends (a drip buys no time). Closed at once, the
        unread bytes made the kernel reset the connection, and the client could lose the 408 it had been
        sent (ECONNRESET before its read)."""
        assert self.transport is not None
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self._cancel(self._body_timer)
        self._body_timer = asyncio.get_running_loop().call_later(LINGER_S, self.transport.close)

    @staticmethod
    def _cancel(timer: asyncio.TimerHandle | None) -> None:
        if timer is not None:
            timer.cancel()

    def _refuse(self) -> None:
        self._refused = True
        self._cancel(self._head_timer)
        message = f"request headers are too large (over {self.head_limit} bytes)"
        log.info("%s:%s refused: %s", *(self.client or ("?", 0)), message)
        self._answer(431, "Request Header Fields Too Large", "headers_too_large", message)
        self._drop(0)

    def _answer(self, status: int, phrase: str, code: str, message: str) -> None:
        assert self.transport is not None
        body = json.dumps({"error": {"code": code, "message": message}}).encode()
        self.transport.write(f"HTTP/1.1 {status} {phrase}\r\ncontent-type: application/json\r\n".encode()
                             + b"content-length: " + str(len(body)).encode() + b"\r\nconnection: close\r\n\r\n"
                             + body)

    def _drop(self, n: int) -> None:
        assert self.transport is not None
        self._dropped += n
        if self._linger is not None:
            self._linger.cancel()
        if self._dropped > LINGER_MAX_BYTES:
            self.transport.close()
            return
        self._linger = asyncio.get_running_loop().call_later(LINGER_S, self.transport.close)


def capped_protocol(max_header_bytes: int, header_timeout_s: float) -> type[HeadBoundProtocol]:
    """The protocol class for uvicorn.Config(http=...), bounded for this configuration."""
    return type("HeadBoundProtocol", (HeadBoundProtocol,),
                {"head_limit": max_header_bytes + HEAD_SLACK, "head_timeout_s": header_timeout_s})
