"""Errors the client raises (events the hub sends in a session are yielded, not raised)."""

from __future__ import annotations

import importlib
from types import ModuleType

CLIENT_EXTRA = "pip install 'asrhub[client]'"


class HubRequestError(Exception):
    """The hub refused a request outright: a start, a resume, a token, a connection (contract error code,
    e.g. `unauthorized`, `too_many_sessions`, `session_not_found`)."""

    def __init__(self, code: str, message: str, status: int | None = None, *,
                 retry_after_ms: int | None = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.status = status
        self.retry_after_ms = retry_after_ms  # a refusal for now: when to try again (a resume the hub cannot take yet)


class InvalidOptions(HubRequestError, ValueError):
    """Start options given as a dict or keyword arguments that are no valid StartSession, refused before
    anything is sent: `code` as the hub would answer (`invalid_command`; an unknown audio encoding:
    `unsupported_encoding`), `fields` the dotted names at fault (`language`, `audio.sample_rate`), and the
    message naming them. The pydantic ValidationError is the `__cause__`."""

    def __init__(self, code: str, message: str, fields: tuple[str, ...]) -> None:
        super().__init__(code, message)
        self.fields = fields


class ConnectionLost(Exception):
    """The connection under a session dropped (the session itself may still be resumable)."""


class ResumeFailed(HubRequestError):
    """A session could not be resumed: the hub refused (its code, e.g. `session_not_found`) or every
    reconnect failed (code `connection_lost`)."""

    def __init__(self, message: str, cause: BaseException | None = None) -> None:
        code = cause.code if isinstance(cause, HubRequestError) else "connection_lost"
        super().__init__(code, message)
        self.cause = cause


class MissingClientDependency(ImportError):
    """A transport needs a package of the `client` extra that is not installed (HTTP+SSE and tokens:
    httpx; Socket.IO: aiohttp, python-socketio's asyncio client). The message names the install command."""


def client_dependency(module: str, needed_by: str) -> ModuleType:
    """`module`, imported; a MissingClientDependency naming `asrhub[client]` when it is not installed."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise MissingClientDependency(f"{needed_by} needs the '{module}' package, which is not installed: "
                                      f"{CLIENT_EXTRA}", name=module) from e
