"""WebSocket transport (GET /v1/ws): JSON text commands, binary audio, one JSON event per text frame."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from ..core.commands import StartSession
from ..core.events import Event
from .base import Connection, StreamingClient
from .connection import start_fields
from .errors import ConnectionLost, HubRequestError
from .events import parse_event

MOVED = 1012  # the hub's close code for "session moved; resume it" (another node took the session over)


def ws_url(base_url: str, path: str) -> str:
    base = base_url.rstrip("/")
    if base.startswith("https://"):
        base = "wss://" + base[len("https://"):]
    elif base.startswith("http://"):
        base = "ws://" + base[len("http://"):]
    return base + path


class WsConnection(Connection):
    def __init__(self, client: WebSocketClient) -> None:
        self.client = client
        self.ws: Any = None

    async def open(self, start: StartSession) -> str | None:
        import websockets
        headers = {"Authorization": f"Bearer {self.client.api_key}"} if self.client.api_key else None
        try:
            self.ws = await websockets.connect(ws_url(self.client.base_url, "/v1/ws"), max_size=None,
                                               additional_headers=headers, open_timeout=self.client.start_timeout_s)
        except websockets.InvalidStatus as e:
            raise HubRequestError("unauthorized" if e.response.status_code in (401, 403) else "internal",
                                  f"WebSocket upgrade refused with HTTP {e.response.status_code}",
                                  e.response.status_code) from None
        except (OSError, websockets.WebSocketException, TimeoutError) as e:
            raise ConnectionLost(f"cannot connect: {e}") from e
        try:
            await self._send(json.dumps({"type": "start", **start_fields(start)}))
        except ConnectionLost:
            refusal = await self._refusal()  # the hub refused the connection (e.g. a bad key) before our start
            if refusal is not None:
                raise refusal from None
            raise
        return start.resume.session_id if start.resume else None

    async def _refusal(self) -> HubRequestError | None:
        """The error event a closed connection left behind, if any."""
        try:
            ev = json.loads(await self.ws.recv())
        except Exception:  # noqa: BLE001 (nothing was left)
            return None
        if isinstance(ev, dict) and ev.get("type") == "error":
            return HubRequestError(str(ev.get("code")), str(ev.get("message")))
        return None

    async def events(self) -> AsyncIterator[Event]:
        import websockets
        try:
            async for msg in self.ws:
                if isinstance(msg, str):
                    yield parse_event(json.loads(msg))
        except websockets.ConnectionClosedError as e:
            self.moved = e.rcvd is not None and e.rcvd.code == MOVED  # (the hub's own close)
            raise ConnectionLost(f"connection closed: {e}") from e
        except OSError as e:
            raise ConnectionLost(str(e)) from e
        # a clean close (1000) ends the iteration; LiveSession tells "ended" from "lost" by session.ended

    async def _send(self, data: str | bytes) -> None:
        import websockets
        try:
            await self.ws.send(data)
        except (websockets.ConnectionClosed, OSError) as e:
            raise ConnectionLost(f"send failed: {e}") from e

    async def send_audio(self, data: bytes) -> None:
        await self._send(data)

    async def flush(self) -> None:
        await self._send('{"type":"flush"}')

    async def stop(self, again: bool = False) -> None:
        await self._send('{"type":"stop"}')

    async def keepalive(self) -> None:
        await self._send('{"type":"keepalive"}')

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()


class WebSocketClient(StreamingClient):
    """`WebSocketClient("http://127.0.0.1:8000", api_key=...)`; the key goes in the Authorization header."""

    transport = "websocket"

    def __init__(self, base_url: str, **kw: Any) -> None:
        super().__init__(**kw)
        self.base_url = base_url

    def connection(self) -> Connection:
        return WsConnection(self)
