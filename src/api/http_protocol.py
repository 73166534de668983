"""uvicorn's httptools protocol with bounds on how much of a request head it reads, and for how long.

httptools (llhttp) accumulates a request's headers however long they are, and uvicorn hands them to
the app only once they are complete: 16 MiB of headers would be read into memory before the app's
431 (http_guard.HeaderLimitMiddleware) could say no. This protocol counts the bytes of each request
head as they arrive (a read that completes the head does not count: bodies are not heads); past
`head_limit` it answers 431 `headers_too_large` itself, then reads and drops
what the client still sends for a short while (a lingering close, so the client sees the answer
rather than a reset) and closes. The precise caps (server.max_header_bytes / server.max_headers) stay
with the middleware; `head_limit` sits above them with room for a long request line.

A request head must also be complete within `head_timeout_s` (server.header_timeout_s) of its first
byte (or of the connection, for its first request): a client that drips header bytes is answered 408
and closed, one that connects and sends nothing is closed (uvicorn's keep-alive timeout only covers
the time between requests).
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

log = logging.getLogger(__name__)

HEAD_SLACK = 64 * 1024   # request line, header line framing, ...
LINGER_S = 1.0           # after the answer: drop what still comes until this long without data
LINGER_MAX_BYTES = 64 * 1024 * 1024


class CappedHttpToolsProtocol(HttpToolsProtocol):
    head_limit = 32 * 1024 + HEAD_SLACK
    head_timeout_s = 30.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._in_head = True
        self._head_bytes = 0
        self._refused = False
        self._dropped = 0
        self._linger: asyncio.TimerHandle | None = None
        self._head_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_head_timer()  # a connection that never completes a request head is not held forever

    def data_received(self, data: bytes) -> None:
        if self._refused:
            self._drop(len(data))
            return
        super().data_received(data)  # at most one socket read (256 KiB): the parser's callbacks run
        if self._in_head and not self.transport.is_closing():  # this request's head is still not complete
            self._head_bytes += len(data)
            if self._head_bytes > self.head_limit:
                self._refuse()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_head = True
        self._head_bytes = 0
        self._arm_head_timer()

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._cancel(self._head_timer)
        self._head_timer = None
        super().on_headers_complete()

    def _arm_head_timer(self) -> None:
        self._cancel(self._head_timer)
        self._head_timer = asyncio.get_running_loop().call_later(self.head_timeout_s, self._head_timed_out)

    def _head_timed_out(self) -> None:
        """No complete request head within head_timeout_s (a slow drip of header bytes, or nothing):
        408 when part of a head came, else a quiet close."""
        self._head_timer = None
        if not self._in_head or self._refused or self.transport.is_closing():
            return
        if self._head_bytes == 0 and not getattr(self, "url", b"") and not self.headers:
            self.transport.close()
            return
        log.info("%s:%s: request head not complete within %g s; closing", *(self.client or ("?", 0)),
                 self.head_timeout_s)
        self._answer(408, "Request Timeout", "invalid_command",
                     f"request headers were not complete within {self.head_timeout_s:g} s")
        self._refused = True
        self._drop(0)

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
        body = json.dumps({"error": {"code": code, "message": message}}).encode()
        self.transport.write(f"HTTP/1.1 {status} {phrase}\r\ncontent-type: application/json\r\n".encode()
                             + b"content-length: " + str(len(body)).encode() + b"\r\nconnection: close\r\n\r\n"
                             + body)

    def _drop(self, n: int) -> None:
        self._dropped += n
        if self._linger is not None:
            self._linger.cancel()
        if self._dropped > LINGER_MAX_BYTES:
            self.transport.close()
            return
        self._linger = asyncio.get_running_loop().call_later(LINGER_S, self.transport.close)

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel(self._linger)
        self._cancel(self._head_timer)
        super().connection_lost(exc)


def capped_protocol(max_header_bytes: int, header_timeout_s: float) -> type[CappedHttpToolsProtocol]:
    """The protocol class for uvicorn.Config(http=...), bounded for this configuration."""
    return type("CappedHttpToolsProtocol", (CappedHttpToolsProtocol,),
                {"head_limit": max_header_bytes + HEAD_SLACK, "head_timeout_s": header_timeout_s})
