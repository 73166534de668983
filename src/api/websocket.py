"""WebSocket transport, GET /v1/ws (DESIGN §3.3): JSON text commands, binary audio, JSON events."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from typing import Any

from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from ..core.commands import FlushCommand, StartCommand, StopCommand, parse_command
from ..core.errors import HubError
from ..core.events import Event
from ..engine.service import SessionService
from .binding import SessionBinding

log = logging.getLogger(__name__)
router = APIRouter()


class WsConnection:
    def __init__(self, ws: WebSocket, service: SessionService) -> None:
        self.ws = ws
        self.bind = SessionBinding(service, "websocket", ws.scope.get("asrhub.api_key"))
        self.sender: asyncio.Task[None] | None = None
        self.send_lock = asyncio.Lock()

    async def send_text(self, text: str) -> None:
        async with self.send_lock:
            await self.ws.send_text(text)

    async def send_event(self, ev: Event) -> None:
        await self.send_text(ev.to_json())

    async def report(self, err: HubError) -> None:
        direct = self.bind.fail(err)
        if direct is not None:
            await self.send_event(direct)

    async def pump_events(self, after_seq: int) -> None:
        try:
            if await self.bind.pump(self.send_event, after_seq):
                await self.ws.close(1000)
            elif self.bind.moved:  # another node took the session over: resume (anywhere)
                await self.ws.close(1012, "session moved; resume it")
        except (WebSocketDisconnect, RuntimeError, OSError):
            pass

    async def handle(self, msg: Mapping[str, Any]) -> None:
        if msg.get("bytes") is not None:
            data = msg["bytes"]
            assert isinstance(data, bytes)
            self.bind.audio(data)
            return
        text = msg.get("text")
        if text is None:
            return
        assert isinstance(text, str)
        cmd = parse_command(text)
        if isinstance(cmd, StartCommand):
            _, after = await self.bind.start(cmd)
            self.sender = asyncio.create_task(self.pump_events(after))
        elif isinstance(cmd, FlushCommand):
            self.bind.flush()
        elif isinstance(cmd, StopCommand):
            self.bind.stop()
        else:
            self.bind.keepalive()

    async def run(self) -> None:
        try:
            while True:
                msg = await self.ws.receive()
                if msg["type"] == "websocket.disconnect":
                    break
                try:
                    await self.handle(msg)
                except HubError as e:
                    await self.report(e)
                except Exception as e:  # never let one bad message take the connection down silently
                    await self.report(self.bind.internal(e, "message"))
        except (WebSocketDisconnect, RuntimeError):
            pass
        finally:
            self.bind.detach()
            if self.sender is not None and not self.sender.done():
                self.sender.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self.sender


@router.websocket("/v1/ws")
async def websocket_endpoint(ws: WebSocket) -> None:
    hub = ws.app.state.hub
    await ws.accept()
    await WsConnection(ws, hub.service).run()
