"""ASGI middleware: API key / short-lived token and origin checks for the HTTP and WebSocket routes under
/v1 and Socket.IO.

The key's name is put in scope["asrhub.api_key"] for the transports (per-key session limits), the whole
credential in scope["asrhub.credential"]. Which credential a route takes is decided here, by path:
routes that start a session take tokens too (core.auth "start"), a running HTTP+SSE session's own
routes take a token of the session's key ("session"), every other route (tokens, REST transcription,
admin) API keys only ("api"). A session's routes answer only its own key's credentials (check_session)."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qs

from ..core.auth import Authenticator, Credential, Purpose, bearer, key_id
from ..core.errors import ErrorCode, HubError
from ..store.sessions.selectors import select_created_at
from . import deepgram_wire
from .binding import check_owner
from .errors import error_event, error_response
from .http_guard import is_head
from .openai_errors import OPENAI_PATHS, openai_error_response
from .realtime_events import realtime_error

Scope = dict[str, Any]
PROTECTED = ("/v1/", "/socket.io")
START_PATHS = ("/v1/ws", "/v1/realtime", "/v1/sessions", "/v1/listen")
SESSION_PREFIX = "/v1/sessions/"


def purpose_of(path: str) -> Purpose:
    if path.rstrip("/") in START_PATHS:
        return "start"
    if path.startswith(SESSION_PREFIX):
        return "session"
    return "api"


def session_call(scope: Scope, path: str) -> tuple[str, bool] | None:
    """(session id, is an event stream) when the request is one the HTTP+SSE routes answer by looking its
    session up: GET/HEAD .../events, POST .../<command>, DELETE /v1/sessions/{id}. Anything else is
    answered by routing (404, 405) whatever the session, so it needs no owner."""
    parts = path[len(SESSION_PREFIX):].split("/")
    method = "HEAD" if is_head(scope) else scope.get("method", "GET")
    if len(parts) == 2 and parts[1] == "events" and method in ("GET", "HEAD"):
        return parts[0], method == "GET"
    if (len(parts) == 2 and method == "POST") or (len(parts) == 1 and method == "DELETE"):
        return parts[0], False
    return None


async def check_session(scope: Scope, path: str, cred: Credential) -> None:
    """A request on a running HTTP+SSE session: the session must be of the credential's own key (the same
    rule, and answer, as every other wire: binding.check_owner); a token's must also have started while
    the token was valid. An unknown session is left to the route (session_not_found)."""
    call = session_call(scope, path)
    if call is None:
        return
    sid, events = call
    service = scope["app"].state.hub.service
    # GET events resumes (its HEAD only looks): the route's own words for an unknown session
    await check_owner(service, sid, key_id(cred.key), resume=events)
    started = select_created_at(service.state, sid)
    if cred.token is None or started is None:
        return
    if started >= cred.token.expires_at:
        raise HubError(ErrorCode.unauthorized, f"the token had expired when session '{sid}' started; "
                       "get a new one from POST /v1/tokens", fatal=True)


RateHit = Callable[[str, int], Awaitable[None]]


class AuthMiddleware:
    def __init__(self, app: Any, auth: Authenticator, cluster_rate: RateHit | None = None) -> None:
        """`cluster_rate`: the requests-per-minute count of a key across a cluster's nodes (DESIGN §8),
        on top of this node's own limiter."""
        self.app = app
        self.auth = auth
        self.cluster_rate = cluster_rate

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] not in ("http", "websocket") or not scope["path"].startswith(PROTECTED):
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        try:
            if scope["type"] == "websocket" and not self.auth.origin_allowed(headers.get("origin")):
                raise HubError(ErrorCode.unauthorized, f"origin {headers.get('origin')} is not allowed", fatal=True)
            # Socket.IO carries its key in the connect packet's auth; its own handler checks it
            if not scope["path"].startswith("/socket.io"):
                path = scope["path"]
                token = bearer(headers.get("authorization")) or (query.get("token") or [None])[0]
                if path.startswith("/v1/listen"):  # Deepgram's `Token <key>` and Sec-WebSocket-Protocol forms
                    token = deepgram_wire.credential(headers) or token
                what = f"{scope.get('method', 'GET')} {path}" if scope["type"] == "http" else f"WebSocket {path}"
                purpose = purpose_of(path) if scope["type"] == "websocket" or path.rstrip("/") != "/v1/listen" else "api"
                cred = self.auth.credential(token, purpose, what)
                if purpose == "session":
                    await check_session(scope, path, cred)
                scope["asrhub.api_key"] = key_id(cred.key)
                scope["asrhub.credential"] = cred
                if self.cluster_rate is not None and cred.key is not None and cred.key.requests_per_minute:
                    await self.cluster_rate(key_id(cred.key) or "", cred.key.requests_per_minute)
        except HubError as e:
            await self._refuse(scope, receive, send, e)
            return
        await self.app(scope, receive, send)

    async def _refuse(self, scope: Scope, receive: Any, send: Any, err: HubError) -> None:
        openai_shape = scope["path"].startswith(OPENAI_PATHS)
        if scope["path"].startswith("/v1/listen"):  # Deepgram's refusal (a socket's: at its handshake)
            if scope["type"] == "websocket":
                await receive()  # websocket.connect
            code = "INVALID_AUTH" if err.code == ErrorCode.unauthorized else err.code.value.upper()
            refused = deepgram_wire.ListenRefused(err.http_status, code, err.message)
            await deepgram_wire.refusal(refused, str(uuid.uuid4()))(scope, receive, send)
            return
        if scope["type"] == "websocket":
            await receive()  # websocket.connect
            await send({"type": "websocket.accept"})
            text = realtime_error(err).model_dump_json() if openai_shape else error_event(err).to_json()
            await send({"type": "websocket.send", "text": text})
            await send({"type": "websocket.close", "code": 1008})
            return
        # the routes' own error answer, byte for byte: a session another key owns is refused exactly as an
        # unknown one is (its existence shows in nothing, not even the JSON's spacing)
        response = openai_error_response(err) if openai_shape else error_response(err)
        if err.code == ErrorCode.unauthorized:
            response.headers["www-authenticate"] = "Bearer"
        await response(scope, receive, send)
