"""What every HTTP answer outside a session has in common, whatever route (or no route) it reaches:

- errors carry the contract body `{"error": {"code", "message"}}` (404/405 of unknown routes and of the
  static mount too, FastAPI's own 422s, a crash's 500); the OpenAI routes answer OpenAI's error shape;
- request headers are capped (server.max_header_bytes in total, server.max_headers lines): over the
  cap is 431 `headers_too_large` before any route runs;
- a client that goes away while its request body is still arriving is one INFO line, not an ERROR
  with a traceback (nobody is left to answer);
- HEAD is answered as GET, headers only, everywhere (the event stream's HEAD does not open a stream).
"""

from __future__ import annotations

import json
import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect
from starlette.routing import Match, Mount
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..core.errors import HTTP_STATUS, ErrorCode
from .errors import describe_request_errors
from .openai_errors import OPENAI_PATHS  # routes that speak OpenAI's API answer OpenAI's error shape

log = logging.getLogger(__name__)


_BY_STATUS: dict[int, ErrorCode] = {404: ErrorCode.not_found, 405: ErrorCode.method_not_allowed,
                                    431: ErrorCode.headers_too_large}
for _code, _status in HTTP_STATUS.items():
    _BY_STATUS.setdefault(_status, _code)  # the first code of each status: 400 invalid_command, 401 ...


def code_for_status(status: int) -> ErrorCode:
    if status in _BY_STATUS:
        return _BY_STATUS[status]
    return ErrorCode.internal if status >= 500 else ErrorCode.invalid_command


def error_body(path: str, status: int, code: ErrorCode, message: str) -> dict[str, Any]:
    if path.startswith(OPENAI_PATHS):
        kind = "server_error" if status >= 500 else "invalid_request_error"
        return {"error": {"message": message, "type": kind, "param": None, "code": code.value}}
    return {"error": {"code": code.value, "message": message}}


def _json_error(request: Request, status: int, code: ErrorCode, message: str,
                headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(error_body(request.url.path, status, code, message), status_code=status, headers=headers)


async def _http_exception(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    status = exc.status_code
    if status < 400:  # not an error (e.g. 304 from the static files)
        return Response(status_code=status, headers=exc.headers)
    allowed = allowed_methods(request.scope) if status in (404, 405) else []
    if status == 404 and allowed:
        status = 405  # the static mount at / answers 404 for an API path asked with the wrong method
    headers = dict(exc.headers or {})
    if status == 405 and allowed:
        headers["Allow"] = ", ".join(allowed)  # the route's methods (the static mount would say GET, HEAD)
    code = code_for_status(status)
    if status == 404:
        message = f"no route {request.url.path}"
    elif status == 405:
        message = f"{request.method} is not allowed on {request.url.path}"
    else:
        message = str(exc.detail) if exc.detail else code.value.replace("_", " ")
    return _json_error(request, status, code, message, headers=headers)


def allowed_methods(scope: Scope, *, documented_only: bool = False) -> list[str]:
    """The methods the routes (not the mounts) at this path answer, for a 405's `Allow`: those of the
    routes in the OpenAPI schema when any matches (a hidden catch-all such as POST
    /v1/sessions/{id}/{command} is not a method of .../events), else those of the hidden ones; HEAD
    wherever GET is (HeadMiddleware). Empty when no route has this path."""
    documented: set[str] = set()
    hidden: set[str] = set()
    probe = {**scope, "method": "\x00"}  # no route takes it: every route with this path matches PARTIAL
    app = scope["app"]
    for route in getattr(app.state, "routes", None) or app.router.routes:
        if isinstance(route, Mount) or not isinstance(getattr(route, "methods", None), set | frozenset):
            continue
        try:
            match, _ = route.matches(probe)
        except Exception:  # a route type that cannot tell: it does not count
            continue
        if match == Match.PARTIAL:
            (documented if getattr(route, "include_in_schema", True) else hidden).update(route.methods)
    methods = documented or (set() if documented_only else hidden)
    if "GET" in methods:
        methods.add("HEAD")
    order = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")
    return sorted(methods, key=lambda m: (order.index(m) if m in order else len(order), m))


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    return _json_error(request, 400, ErrorCode.invalid_command, describe_request_errors(exc.errors()))


async def _client_disconnect(request: Request, exc: Exception) -> Response:
    log.info("%s %s: the client went away before its request body was complete", request.method, request.url.path)
    return Response(status_code=400)  # nobody reads it


async def _internal_error(request: Request, exc: Exception) -> Response:
    return _json_error(request, 500, ErrorCode.internal, f"internal error: {type(exc).__name__}")


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(HTTPException, _http_exception)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(ClientDisconnect, _client_disconnect)
    app.add_exception_handler(Exception, _internal_error)  # 500 with the contract body (still logged)


class HeadMiddleware:
    """HEAD is answered as GET would be, headers only, on every route and mount (a production server
    does; FastAPI's routes would answer 405, and the static mount would take HEAD /v1/... as a missing
    file). The app sees GET with scope["asrhub.head"] set: a streaming answer (the SSE event stream)
    checks it and sends no stream; any body another route sends is dropped here."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("method") != "HEAD":
            await self.app(scope, receive, send)
            return
        done = False

        async def send_headers_only(message: Message) -> None:
            nonlocal done
            if message["type"] == "http.response.start":
                await send(message)
            elif message["type"] == "http.response.body" and not done:
                done = True
                await send({"type": "http.response.body", "body": b"", "more_body": False})

        await self.app({**scope, "method": "GET", "asrhub.head": True}, receive, send_headers_only)


def is_head(scope: Scope) -> bool:
    return scope.get("method") == "HEAD" or bool(scope.get("asrhub.head"))


class HeaderLimitMiddleware:
    """431 `headers_too_large` for a request whose headers exceed the caps (WebSocket: the handshake is
    refused with the same answer where the server supports denial responses, else closed)."""

    def __init__(self, app: ASGIApp, max_bytes: int, max_count: int) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.max_count = max_count

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            headers = scope.get("headers") or []
            size = sum(len(k) + len(v) for k, v in headers)
            if len(headers) > self.max_count or size > self.max_bytes:
                await self._refuse(scope, receive, send, len(headers), size)
                return
        await self.app(scope, receive, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send, count: int, size: int) -> None:
        message = (f"request headers are too large ({count} lines, {size} bytes; the limits are "
                   f"{self.max_count} lines and {self.max_bytes} bytes)")
        log.info("%s %s refused: %s", scope.get("method", "WEBSOCKET"), scope.get("path"), message)
        body = json.dumps(error_body(scope.get("path", ""), 431, ErrorCode.headers_too_large, message)).encode()
        start = {"status": 431, "headers": [(b"content-type", b"application/json"),
                                            (b"content-length", str(len(body)).encode())]}
        if scope["type"] == "http":
            await send({"type": "http.response.start", **start})
            await send({"type": "http.response.body", "body": body})
            return
        await receive()  # websocket.connect
        if "websocket.http.response" in (scope.get("extensions") or {}):
            await send({"type": "websocket.http.response.start", **start})
            await send({"type": "websocket.http.response.body", "body": body})
        else:
            await send({"type": "websocket.close", "code": 1008})
