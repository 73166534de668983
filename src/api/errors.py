"""Mapping HubError onto each wire: an error event (streams) or HTTP status + JSON (REST)."""

from __future__ import annotations

import time
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException

from ..core.errors import ErrorCode, HubError
from ..core.events import ErrorEvent


def error_event(err: HubError, session_id: str = "") -> ErrorEvent:
    """An error outside any session (before start, bad frame) has session_id "" and seq 0."""
    return ErrorEvent(session_id=session_id, code=err.code.value, message=err.message, fatal=err.fatal,
                      ts=time.time(), retry_after_ms=err.retry_after_ms)


def error_response(err: HubError, headers: dict[str, str] | None = None) -> JSONResponse:
    body: dict[str, object] = {"code": err.code.value, "message": err.message}
    if err.retry_after_ms is not None:  # a refusal for now (a resume while a dead node's lease lives)
        body["retry_after_ms"] = err.retry_after_ms
    retry_s = err.retry_after_s
    if retry_s is None and err.retry_after_ms is not None:
        retry_s = -(-err.retry_after_ms // 1000)  # whole seconds, rounded up (RFC 9110 delay-seconds)
    if retry_s is not None:
        headers = {**(headers or {}), "Retry-After": str(retry_s)}
    return JSONResponse({"error": body}, status_code=err.http_status, headers=headers)


class ErrorDetail(BaseModel):
    code: str
    message: str
    retry_after_ms: int | None = Field(None, description="a refusal for now: try again this many ms later "
                                       "(a resume while a dead node's lease still runs, `node_lost`)")


class ErrorBody(BaseModel):
    """The error answer of every HTTP route: `{"error": {"code", "message"}}`."""

    error: ErrorDetail


#: What each error status means, for the OpenAPI `responses` of the routes that answer it.
ERROR_STATUS_TEXT: dict[int, str] = {
    400: "malformed or invalid request (`invalid_command`, `invalid_audio`)",
    401: "missing or invalid API key or token (`unauthorized`)",
    404: "no such session, provider or model",
    409: "the session's state refuses the request: it has ended, is stopping, or no longer holds the events "
         "asked for (`invalid_command`)",
    413: "body over its limit (`payload_too_large`)",
    415: "audio encoding this hub cannot decode (`unsupported_encoding`)",
    429: "too many requests for this API key (`rate_limited`)",
    431: "request headers over server.max_header_bytes / server.max_headers (`headers_too_large`)",
    500: "a bug (`internal`)",
    502: "the provider failed on this audio (`provider_error`)",
    503: "the provider is loading or unhealthy, the hub is full or shutting down, or (cluster) the session's "
         "node was lost",
}


def error_responses(*statuses: int, model: type[BaseModel] = ErrorBody) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses=` for the error statuses a route answers, each with its error body. (401 and 429
    are added to every /v1 route when API keys are configured, 431 and 500 to every route: api.openapi.)"""
    return {status: {"model": model, "description": ERROR_STATUS_TEXT[status]} for status in statuses}


#: The errors of a running HTTP+SSE session's command routes (flush, stop, keepalive, DELETE).
SESSION_COMMAND_ERRORS = error_responses(404, 409, 503)

#: The errors of a whole-file transcription (POST /v1/transcribe).
ERROR_RESPONSES = error_responses(400, 404, 413, 415, 502, 503)


class HubRoute(APIRoute):
    """An APIRoute whose request-validation failures answer like every other hub error:
    400 `{"error": {"code": "invalid_command", "message": ...}}` instead of FastAPI's 422. A subclass answers
    in another shape (`problem` makes the error, `answer` the response) and may answer the handler's own
    HubErrors too (`answers_own_errors`; here they go on to the app's handler)."""

    answers_own_errors = False

    @staticmethod
    def problem(code: ErrorCode, message: str, param: str | None) -> HubError:
        """The error of a request FastAPI could not take; `param`: the request field at fault, if one is."""
        return HubError(code, message)

    @staticmethod
    def answer(err: HubError) -> Response:
        return error_response(err)

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route_handler(request: Request) -> Response:
            try:
                return await handler(request)
            except RequestValidationError as e:
                errors = e.errors()
                return self.answer(self.problem(ErrorCode.invalid_command, describe_request_errors(errors),
                                                request_param(errors)))
            except HTTPException as e:  # an unparseable body (garbage multipart, no boundary, ...)
                if e.status_code == 413:  # a multipart body: its file is what is too large
                    return self.answer(self.problem(ErrorCode.payload_too_large, f"request body: {e.detail}", "file"))
                if e.status_code != 400:
                    raise
                return self.answer(self.problem(ErrorCode.invalid_command, f"cannot parse the request body: {e.detail}",
                                                None))
            except HubError as e:
                if not self.answers_own_errors:
                    raise
                return self.answer(e)

        return route_handler


def request_param(errors: Sequence[Any]) -> str | None:
    """The request field the first of FastAPI's validation errors is about."""
    for e in errors:
        loc = [str(p) for p in e.get("loc", ()) if p not in ("body", "query", "header", "path")]
        if loc:
            return loc[0]
    return None


def describe_request_errors(errors: Sequence[Any]) -> str:
    parts = []
    for e in list(errors)[:5]:
        loc = ".".join(str(p) for p in e.get("loc", ()) if p not in ("body", "query", "header", "path")) or "body"
        if e.get("type") == "missing":
            parts.append(f"missing field '{loc}'")
        else:
            parts.append(f"'{loc}': {e.get('msg', 'invalid')}")
    return "; ".join(parts) or "invalid request"
