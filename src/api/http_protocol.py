"""uvicorn's httptools protocol with a bound on how much of a request head it reads.

httptools (llhttp) accumulates a request's headers however long they are, and uvicorn hands them to
the app only once they are complete: 16 MiB of headers would be read into memory before the app's
431 (http_guard.HeaderLimitMiddleware) could say no. This protocol counts the bytes of each request
head as they arrive (a read that completes the head does not count: bodies are not heads); past
`head_limit` it answers 431 `headers_too_large` itself, then reads and drops
what the client still sends for a short while (a lingering close, so the client sees the answer
rather than a reset) and closes. The precise caps (server.max_header_bytes / server.max_headers) stay
with the middleware; `head_limit` sits above them with room for a long request line.
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

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._in_head = True
        self._head_bytes = 0
        self._refused = False
        self._dropped = 0
        self._linger: asyncio.TimerHandle | None = None

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

    def on_headers_complete(self) -> None:
        self._in_head = False
        super().on_headers_complete()

    def _refuse(self) -> None:
        self._refused = True
        message = f"request headers are too large (over {self.head_limit} bytes)"
        log.info("%s:%s refused: %s", *(self.client or ("?", 0)), message)
        body = json.dumps({"error": {"code": "headers_too_large", "message": message}}).encode()
        self.transport.write(b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-type: application/json\r\n"
                             b"content-length: " + str(len(body)).encode() + b"\r\nconnection: close\r\n\r\n" + body)
        self._drop(0)

    def _drop(self, n: int) -> None:
        self._dropped += n
        if self._linger is not None:
            self._linger.cancel()
        if self._dropped > LINGER_MAX_BYTES:
            self.transport.close()
            return
        self._linger = asyncio.get_running_loop().call_later(LINGER_S, self.transport.close)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._linger is not None:
            self._linger.cancel()
        super().connection_lost(exc)


def capped_protocol(max_header_bytes: int) -> type[CappedHttpToolsProtocol]:
    """The protocol class for uvicorn.Config(http=...), bounded for this configuration."""
    return type("CappedHttpToolsProtocol", (CappedHttpToolsProtocol,),
                {"head_limit": max_header_bytes + HEAD_SLACK})
