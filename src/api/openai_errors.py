"""OpenAI's error shape for the OpenAI-compatible routes: `{"error": {"message", "type", "param", "code"}}`.

`code` is the hub's stable error code (DESIGN §3.2); `type` is OpenAI's class of error; `param` names the
request field at fault when there is one."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from fastapi import Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from ..core.errors import ErrorCode, HubError
from .errors import HubRoute

#: paths whose errors use OpenAI's shape (the auth middleware answers them so too)
OPENAI_PATHS = ("/v1/audio/", "/v1/models", "/v1/realtime")


class ParamError(HubError):
    """A HubError about one request field (OpenAI `param`)."""

    def __init__(self, code: ErrorCode | str, message: str, param: str | None) -> None:
        super().__init__(code, message)
        self.param = param


def field_of(err: HubError, default: str | None) -> str | None:
    """The request field a check's HubError is about: its own `param`, else the field its message names
    (a language or prompt check run on a provider), else `default`."""
    if isinstance(err, ParamError):
        return err.param
    text = err.message.lower()
    return "language" if "language" in text else "prompt" if "prompt" in text else default


@contextlib.contextmanager
def param(name: str, *, guess: bool = False) -> Iterator[None]:
    """HubErrors raised in the block are about request field `name` (`guess`: about the field the error
    names, else `name`: field_of); errors of the hub itself (5xx: a provider failing, a full hub) and rate
    limits are about no field."""
    try:
        yield
    except HubError as e:
        if isinstance(e, ParamError) or e.http_status >= 500 or e.retry_after_s is not None:
            raise
        raise ParamError(e.code, e.message, field_of(e, name) if guess else name) from None


@contextlib.contextmanager
def sent_as(names: dict[str, str]) -> Iterator[None]:
    """A ParamError about a field the route made from another (a `prompt` from `keywords[]`, a `language`
    from `languages[]`) names the field the client sent."""
    try:
        yield
    except ParamError as e:
        if e.param not in names or names[e.param] == e.param:
            raise
        raise ParamError(e.code, e.message, names[e.param]) from None


class OpenAIErrorDetail(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: str


class OpenAIErrorBody(BaseModel):
    error: OpenAIErrorDetail


def error_type(status: int) -> str:
    if status == 401:
        return "authentication_error"
    if status == 404:
        return "not_found_error"
    if status == 429:
        return "rate_limit_error"
    if status >= 500:
        return "server_error"
    return "invalid_request_error"


def openai_error_body(err: HubError) -> OpenAIErrorBody:
    return OpenAIErrorBody(error=OpenAIErrorDetail(message=err.message, type=error_type(err.http_status),
                                                   param=getattr(err, "param", None), code=err.code.value))


def openai_error_response(err: HubError) -> JSONResponse:
    headers = {"Retry-After": str(err.retry_after_s)} if err.retry_after_s is not None else None
    return JSONResponse(openai_error_body(err).model_dump(), status_code=err.http_status, headers=headers)


#: OpenAPI `responses=` for the OpenAI audio routes (401 and 429 with API keys, 431 and 500: api.openapi)
OPENAI_ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": OpenAIErrorBody} for status in (400, 404, 413, 415, 502, 503)}


class OpenAIRoute(HubRoute):
    """Request-validation failures, unparseable bodies and the handler's own HubErrors answer in OpenAI's
    error shape, with the field at fault as `param`."""

    answers_own_errors = True

    @staticmethod
    def problem(code: ErrorCode, message: str, param: str | None) -> HubError:
        return ParamError(code, message, param)

    @staticmethod
    def answer(err: HubError) -> Response:
        return openai_error_response(err)
