"""Socket.IO transport (namespace /asr): emit start (acked), audio, flush, stop; events arrive by type."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from ..core.commands import StartSession
from ..core.events import Event
from .base import Connection, StreamingClient
from .connection import start_fields
from .errors import ConnectionLost, HubRequestError, client_dependency
from .events import parse_event

NAMESPACE = "/asr"
_GONE = object()


class SioConnection(Connection):
    def __init__(self, client: SocketIOClient) -> None:
        client_dependency("aiohttp", "the Socket.IO client (SocketIOClient)")  # its asyncio transport
        socketio = client_dependency("socketio", "the Socket.IO client (SocketIOClient)")
        self.client = client
        self.sio = socketio.AsyncClient(reconnection=False)
        self.queue: asyncio.Queue[Any] = asyncio.Queue()
        self.refusal: dict[str, Any] | None = None
        self.sio.on("*", self._any, namespace=NAMESPACE)
        self.sio.on("disconnect", self._gone, namespace=NAMESPACE)
        self.sio.on("connect_error", self._refused, namespace=NAMESPACE)

    async def _any(self, event: str, data: Any = None) -> None:
        if isinstance(data, dict):
            self.queue.put_nowait({**data, "type": data.get("type", event)})

    async def _gone(self, reason: Any = None) -> None:
        # the hub disconnects a client whose session another node took over (a dead node's connection
        # ends as a transport error or close)
        self.moved = reason == self.sio.reason.SERVER_DISCONNECT
        self.queue.put_nowait(_GONE)

    async def _refused(self, data: Any = None) -> None:
        self.refusal = data.get("data", data) if isinstance(data, dict) else None

    async def open(self, start: StartSession) -> str | None:
        import socketio
        auth = {"token": self.client.api_key} if self.client.api_key else None
        try:
            await self.sio.connect(self.client.base_url, namespaces=[NAMESPACE], transports=["websocket"], auth=auth,
                                   wait_timeout=int(self.client.start_timeout_s))
        except socketio.exceptions.ConnectionError as e:
            r = self.refusal or {}
            if r.get("code"):
                raise HubRequestError(str(r["code"]), str(r.get("message", ""))) from None
            raise ConnectionLost(f"cannot connect: {e}") from e
        try:
            ack = await self.sio.call("start", start_fields(start), namespace=NAMESPACE,
                                      timeout=int(self.client.start_timeout_s))
        except (socketio.exceptions.SocketIOError, TimeoutError) as e:
            raise ConnectionLost(f"start: {e}") from e
        if isinstance(ack, dict) and isinstance(ack.get("error"), dict):
            after = ack["error"].get("retry_after_ms")
            raise HubRequestError(str(ack["error"].get("code")), str(ack["error"].get("message")),
                                  retry_after_ms=after if isinstance(after, int) else None)
        if not isinstance(ack, dict) or not ack.get("session_id"):
            raise HubRequestError("internal", f"unexpected start ack {ack!r}")
        return str(ack["session_id"])

    async def events(self) -> AsyncIterator[Event]:
        while True:
            item = await self.queue.get()
            if item is _GONE:
                raise ConnectionLost("Socket.IO disconnected")
            yield parse_event(item)

    async def _emit(self, event: str, data: Any = None) -> None:
        import socketio
        if not self.sio.connected:
            raise ConnectionLost("Socket.IO is not connected")
        try:
            await self.sio.emit(event, data, namespace=NAMESPACE)
        except socketio.exceptions.SocketIOError as e:
            raise ConnectionLost(f"emit {event}: {e}") from e

    async def send_audio(self, data: bytes) -> None:
        await self._emit("audio", data)

    async def flush(self) -> None:
        await self._emit("flush")

    async def stop(self, again: bool = False) -> None:
        await self._emit("stop")

    async def keepalive(self) -> None:
        await self._emit("keepalive")

    async def close(self) -> None:
        await self.sio.disconnect()


class SocketIOClient(StreamingClient):
    """`SocketIOClient("http://127.0.0.1:8000", api_key=...)`; the key goes in the connect packet's auth."""

    transport = "socketio"

    def __init__(self, base_url: str, **kw: Any) -> None:
        super().__init__(**kw)
        self.base_url = base_url.rstrip("/")

    def connection(self) -> Connection:
        return SioConnection(self)
