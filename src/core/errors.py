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
    operator_unavailable = "operator_unavailable"  # a pipeline operator (the Silero VAD) cannot load here
    too_many_sessions = "too_many_sessions"
    payload_too_large = "payload_too_large"
    rate_limited = "rate_limited"
    unauthorized = "unauthorized"
    session_not_found = "session_not_found"
    node_lost = "node_lost"                    # cluster: the node computing the session died (DESIGN §8)
    not_found = "not_found"                    # HTTP: no such route or file (404)
    method_not_allowed = "method_not_allowed"  # HTTP: the route exists, not with this method (405)
    headers_too_large = "headers_too_large"    # HTTP: request headers over server.max_header_bytes/max_headers (431)
    slow_consumer = "slow_consumer"            # the client stopped reading its events; the session was ended
    internal = "internal"


#: HTTP status for each code (REST/SSE transports).
HTTP_STATUS: dict[ErrorCode, int] = {
    ErrorCode.invalid_command: 400,
    ErrorCode.unsupported_encoding: 415,
    ErrorCode.invalid_audio: 400,
    ErrorCode.unknown_provider: 404,
    ErrorCode.provider_unavailable: 503,
    ErrorCode.provider_error: 502,
    ErrorCode.operator_unavailable: 503,
    ErrorCode.too_many_sessions: 503,
    ErrorCode.payload_too_large: 413,
    ErrorCode.rate_limited: 429,
    ErrorCode.unauthorized: 401,
    ErrorCode.session_not_found: 404,
    ErrorCode.node_lost: 503,
    ErrorCode.not_found: 404,
    ErrorCode.method_not_allowed: 405,
    ErrorCode.headers_too_large: 431,
    ErrorCode.slow_consumer: 429,
    ErrorCode.internal: 500,
}


#: Codes a client may retry as they are (later, or elsewhere): the failure is not in the request.
RETRYABLE: frozenset[ErrorCode] = frozenset({
    ErrorCode.provider_unavailable, ErrorCode.provider_error, ErrorCode.too_many_sessions,
    ErrorCode.rate_limited, ErrorCode.internal, ErrorCode.node_lost, ErrorCode.slow_consumer})


class HubError(Exception):
    """An error with a contract code. `fatal`: the session cannot continue. `retryable`: the same
    request may succeed later or elsewhere (a provider failure, a full hub), as opposed to a request
    that is wrong in itself. Errors are immutable: `as_fatal()` gives a fatal copy."""

    def __init__(self, code: ErrorCode | str, message: str, *, fatal: bool = False,
                 retry_after_s: int | None = None, retry_after_ms: int | None = None) -> None:
        super().__init__(message)
        self.code = ErrorCode(code)
        self.message = message
        self._fatal = fatal
        self.retry_after_s = retry_after_s  # HTTP Retry-After for refusals under load
        self.retry_after_ms = retry_after_ms  # when a refused resume may succeed (cluster: the old lease's end)

    @property
    def fatal(self) -> bool:
        return self._fatal

    @property
    def retryable(self) -> bool:
        return self.code in RETRYABLE

    def as_fatal(self) -> HubError:
        """This error as a fatal one (the original is left as it is)."""
        if self._fatal:
            return self
        copy = HubError(self.code, self.message, fatal=True, retry_after_s=self.retry_after_s,
                        retry_after_ms=self.retry_after_ms)
        copy.__cause__ = self
        return copy

    @property
    def http_status(self) -> int:
        return HTTP_STATUS[self.code]

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.code.value!r}, {self.message!r}, fatal={self.fatal})"


class ClientError(HubError):
    """The request itself is wrong (bad command, bad audio, unknown session): retrying it as it is
    cannot help."""


class SessionStateError(ClientError):
    """A well-formed request the session's state refuses: it has ended, is stopping, has not started, or
    no longer holds the events a resume asks for. The code stays `invalid_command` (the wrong order, on
    every wire); HTTP answers 409 Conflict: the request is right, the session is not in a state for it."""

    @property
    def http_status(self) -> int:
        return 409


class KeyQuotaError(HubError):
    """An API key at its own limit (`max_sessions` of the key): `too_many_sessions` as for a full hub, but
    the client's quota, not the server's capacity: HTTP answers 429 (with Retry-After), not 503."""

    @property
    def http_status(self) -> int:
        return 429


class ProviderFailure(HubError):
    """A provider failed to produce a result it was asked for: an exception in the engine, or no
    answer within `providers.timeout_s`. Failover moves the session to the next healthy provider."""

    def __init__(self, provider: str, message: str, *, timeout: bool = False) -> None:
        super().__init__(ErrorCode.provider_error, message)
        self.provider = provider
        self.timeout = timeout

    @classmethod
    def wrap(cls, provider: str, exc: BaseException) -> ProviderFailure:
        """An exception raised by a provider's stream, as the failure of that provider."""
        if isinstance(exc, ProviderFailure):
            return exc
        detail = str(exc) or type(exc).__name__
        err = cls(provider, f"provider '{provider}' failed: {detail}")
        err.__cause__ = exc
        return err

    @property
    def reason(self) -> str:
        """The `provider.switched` reason: "timeout" or "error: <what went wrong>"."""
        if self.timeout:
            return "timeout"
        cause = self.__cause__
        return f"error: {cause or type(cause).__name__}" if cause is not None else f"error: {self.message}"
