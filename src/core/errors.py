"""Typed errors. Every failure a client can see carries a stable snake_case code."""

from __future__ import annotations

from enum import StrEnum


class ErrorCode(StrEnum):
    invalid_command = "invalid_command"
    unsupported_encoding = "unsupported_encoding"
    invalid_audio = "invalid_audio"
    unknown_provider = "unknown_provider"
    provider_unavailable = "provider_unavailable"
    provider_error = "provider_error"
    too_many_sessions = "too_many_sessions"
    payload_too_large = "payload_too_large"
    rate_limited = "rate_limited"
    unauthorized = "unauthorized"
    session_not_found = "session_not_found"
    not_found = "not_found"                    # HTTP: no such route or file (404)
    method_not_allowed = "method_not_allowed"  # HTTP: the route exists, not with this method (405)
    headers_too_large = "headers_too_large"    # HTTP: request headers over server.max_header_bytes/max_headers (431)
    internal = "internal"


#: HTTP status for each code (REST/SSE transports).
HTTP_STATUS: dict[ErrorCode, int] = {
    ErrorCode.invalid_command: 400,
    ErrorCode.unsupported_encoding: 415,
    ErrorCode.invalid_audio: 400,
    ErrorCode.unknown_provider: 404,
    ErrorCode.provider_unavailable: 503,
    ErrorCode.provider_error: 502,
    ErrorCode.too_many_sessions: 503,
    ErrorCode.payload_too_large: 413,
    ErrorCode.rate_limited: 429,
    ErrorCode.unauthorized: 401,
    ErrorCode.session_not_found: 404,
    ErrorCode.not_found: 404,
    ErrorCode.method_not_allowed: 405,
    ErrorCode.headers_too_large: 431,
    ErrorCode.internal: 500,
}


class HubError(Exception):
    """An error with a contract code. `fatal` means the session cannot continue."""

    def __init__(self, code: ErrorCode | str, message: str, *, fatal: bool = False,
                 retry_after_s: int | None = None) -> None:
        super().__init__(message)
        self.code = ErrorCode(code)
        self.message = message
        self.fatal = fatal
        self.retry_after_s = retry_after_s  # HTTP Retry-After for refusals under load

    @property
    def http_status(self) -> int:
        return HTTP_STATUS[self.code]

    def __repr__(self) -> str:
        return f"HubError({self.code.value!r}, {self.message!r}, fatal={self.fatal})"
