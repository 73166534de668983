"""The Engine.IO mount seen from the HTTP side: errors in the contract's shape, no tracebacks.

Wraps python-engineio's ASGI app (see GuardedApp); the library's own log lines go through BriefLogger.
"""

from __future__ import annotations

import gzip
import json
import zlib
from typing import Any

from .brief_log import BriefLogger
from .http_guard import code_for_status


class GuardedApp:
    """Wraps the Engine.IO ASGI app.

    - A malformed packet that escapes the library (a bad packet type or over-deep JSON on its WebSocket
      raises out of its receive loop) is one brief line, not an ASGI traceback at ERROR; the connection
      is closed (HTTP: 400 when nothing was answered yet).
    - Its HTTP errors (400 "Bad Request", 405 "Method Not Found", ... as plain text) are answered with
      the hub's contract body `{"error": {"code", "message"}}` like every other HTTP error.
    """

    def __init__(self, app: Any, log: BriefLogger) -> None:
        self.app = app
        self.log = log

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        started = False
        held: dict[str, Any] | None = None  # an error answer's start, until its body is complete
        body = b""

        async def tracked(message: Any) -> None:
            nonlocal started, held, body
            kind = message.get("type")
            if kind in ("http.response.start", "websocket.accept", "websocket.close"):
                started = True
            if kind == "http.response.start" and message.get("status", 200) >= 400:
                held = message
                return
            if kind == "http.response.body" and held is not None:
                body += message.get("body", b"")
                if not message.get("more_body", False):
                    await _send_contract_error(send, held, body)
                    held = None
                return
            await send(message)

        try:
            await self.app(scope, receive, tracked)
        except Exception:
            client = scope.get("client") or ("?", 0)
            self.log.exception("malformed Engine.IO traffic from %s:%s, connection closed", client[0], client[1])
            try:
                if scope["type"] == "websocket":
                    await send({"type": "websocket.close", "code": 1002})
                elif not started:
                    await _send_contract_error(send, {"status": 400, "headers": []}, b"malformed Engine.IO request")
            except Exception:  # the connection is already gone
                self.log.debug("closing after malformed Engine.IO traffic failed")


#: headers of the library's answer that describe its body, not ours: ours is plain JSON of its own length
BODY_HEADERS = (b"content-type", b"content-length", b"content-encoding", b"transfer-encoding")


def _decoded(start: dict[str, Any], raw: bytes) -> bytes:
    """The library's error body as it was before its compression (gzip or deflate, to a client that
    accepts it: it compresses any answer over its threshold, errors too)."""
    encoding = next((v.decode("latin-1").strip().lower() for k, v in start.get("headers", [])
                     if k.lower() == b"content-encoding"), "")
    try:
        if encoding == "gzip":
            return gzip.decompress(raw)
        if encoding == "deflate":
            return zlib.decompress(raw)
    except (OSError, EOFError, zlib.error):
        return b""  # not what it said: the message is then the status's own
    return raw


async def _send_contract_error(send: Any, start: dict[str, Any], raw: bytes) -> None:
    status = int(start["status"])
    text = _decoded(start, raw).decode("utf-8", "replace").strip()
    try:
        decoded = json.loads(text)
        text = decoded if isinstance(decoded, str) else text
    except ValueError:
        pass
    payload = json.dumps({"error": {"code": code_for_status(status).value,
                                    "message": f"Socket.IO: {text[:200] or 'request refused'}"}}).encode()
    keep = [(k, v) for k, v in start.get("headers", []) if k.lower() not in BODY_HEADERS]
    await send({"type": "http.response.start", "status": status,
                "headers": [*keep, (b"content-type", b"application/json"),
                            (b"content-length", str(len(payload)).encode())]})
    await send({"type": "http.response.body", "body": payload})
