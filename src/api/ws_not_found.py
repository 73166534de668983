"""A WebSocket handshake to a path no WebSocket route serves is answered as an HTTP request to an unknown
path is: 404, `{"error": {"code": "not_found", "message": "no route <path>"}}` (DESIGN §3.2: every answer
outside a session carries that body). Without this the handshake reached no route (or the static files
at /, which serve HTTP only) and uvicorn answered a bare 403, which points a stranger at keys or Origin.

The 404 goes out through the ASGI `websocket.http.response` extension (uvicorn's websockets protocols
have it); an ASGI server without it gets an accepted connection closed with 4404 and the same reason."""

from __future__ import annotations

import logging

from fastapi import WebSocket
from fastapi.responses import JSONResponse

from ..core.errors import ErrorCode
from .http_guard import error_body

log = logging.getLogger(__name__)

NOT_FOUND_CLOSE = 4404  # the private-use close code of a refused path (4000-4999: the application's own)


async def unknown_websocket(ws: WebSocket) -> None:
    path = ws.url.path
    message = f"no route {path}"
    if "websocket.http.response" in (ws.scope.get("extensions") or {}):
        await ws.send_denial_response(JSONResponse(error_body(path, 404, ErrorCode.not_found, message),
                                                   status_code=404))
        return
    await ws.accept()
    await ws.close(NOT_FOUND_CLOSE, message[:123])  # a close reason holds at most 123 bytes
