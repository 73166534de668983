"""asrhub.client: the Python client of ASR Hub, one interface over WebSocket, HTTP+SSE, Socket.IO and gRPC.

    from asrhub.client import connect

    client = connect("websocket", "http://127.0.0.1:8000", api_key=None)
    async for event in client.stream("speech.flac", language="en"):
        print(event.type, getattr(event, "text", ""))

`stream()` takes bytes, a file path or an (async) iterator of chunks; resume after a dropped connection
is built in and each event reaches the application once. Events are the typed models of
asrhub.core.events. `SyncClient` wraps any client for blocking scripts; `create_token()` gets a
short-lived token from POST /v1/tokens. The client imports the hub's wire vocabulary only.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..core.commands import AudioSpec, StartSession, VadOptions
from .base import Connection, LiveSession, StreamingClient
from .errors import ConnectionLost, HubRequestError, InvalidOptions, MissingClientDependency, ResumeFailed
from .events import (
    ErrorEvent,
    Event,
    ProviderSwitched,
    SessionEnded,
    SessionMigrated,
    SessionStarted,
    SpeechEnded,
    SpeechStarted,
    TranscriptFinal,
    TranscriptPartial,
    WakewordDetected,
    parse_event,
)
from .grpc import GrpcClient
from .sio import SocketIOClient
from .sse import SseClient
from .sync import SyncClient
from .tokens import create_token
from .ws import WebSocketClient

TRANSPORTS: dict[str, Callable[..., StreamingClient]] = {
    c.transport: c for c in (WebSocketClient, SseClient, SocketIOClient, GrpcClient)}  # type: ignore[misc]


def connect(transport: str, url: str, **kw: Any) -> StreamingClient:
    """A client for `transport` ("websocket", "sse", "socketio": `url` is the hub's HTTP base URL;
    "grpc": `url` is host:port)."""
    try:
        cls = TRANSPORTS[transport]
    except KeyError:
        raise ValueError(f"unknown transport {transport!r} (one of {', '.join(TRANSPORTS)})") from None
    return cls(url, **kw)


__all__ = [
    "AudioSpec", "Connection", "ConnectionLost", "ErrorEvent", "Event", "GrpcClient", "HubRequestError",
    "InvalidOptions", "LiveSession", "MissingClientDependency", "ProviderSwitched", "ResumeFailed", "SessionEnded",
    "SessionMigrated",
    "SessionStarted", "SocketIOClient", "SpeechEnded",
    "SpeechStarted", "SseClient", "StartSession", "StreamingClient", "SyncClient", "TRANSPORTS",
    "TranscriptFinal", "TranscriptPartial", "VadOptions", "WakewordDetected", "WebSocketClient", "connect",
    "create_token", "parse_event",
]
