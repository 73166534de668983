"""WebSocket transport, GET /v1/ws (DESIGN §3.3): JSON text commands, binary audio, JSON events."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Mapping
from typing import Any

from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from ..core.commands import FlushCommand, KeepAliveCommand, StartCommand, StopCommand, parse_command
from ..core.errors import ErrorCode, HubError
from ..core.service import SessionService
from ..core.session import Session
from .errors import error_event

log = logging.getLogger(__name__)
router = APIRouter()


class WsConnection:
    def __init__(self, ws: WebSocket, service: SessionService) -> None:
        self.ws = ws
        self.service = service
        self.session: Session | None = None
        self.sender: asyncio.Task[None] | None = None
        self.send_lock = asyncio.Lock()

    async def send_text(self, text: str) -> None:
        async with self.send_lock:
            await self.ws.send_text(text)

    async def send_error(self, err: HubError) -> None:
        sid = self.session.id if self.session is not None else ""
        if self.session is not None and not self.session.ended:
            self.service.error(sid, err)  # goes through the session's channel, in seq order
        else:
            await self.send_text(error_event(err).to_json())

    async def pump_events(self, session: Session, after_seq: int) -> None:
        try:
            async for ev in self.service.events(session.id, after_seq):
                ev_json = ev.to_json()
                await self.send_text(ev_json)
            await self.ws.close(1000)
        except (WebSocketDisconnect, RuntimeError, OSError):
            pass

    async def handle(self, msg: Mapping[str, Any]) -> None:
        if msg.get("bytes") is not None:
            data = msg["bytes"]
            assert isinstance(data, bytes)
            if self.session is None:
                raise HubError(ErrorCode.invalid_command, "audio arrived before 'start'; send a start command first")
            self.service.push_audio(self.session.id, data)
            return
        text = msg.get("text")
        if text is None:
            return
        assert isinstance(text, str)
        cmd = parse_command(text)
        if isinstance(cmd, StartCommand):
            if self.session is not None and not self.session.ended:
                raise HubError(ErrorCode.invalid_command, "a session is already running on this connection")
            session = self.service.start_session(cmd, "websocket", self.ws.scope.get("asrhub.api_key"))
            after = cmd.resume.last_seq if cmd.resume else 0
            self.session = session
            self.sender = asyncio.create_task(self.pump_events(session, after))
        elif self.session is None:
            raise HubError(ErrorCode.invalid_command, f"'{cmd.type}' before 'start'")
        elif isinstance(cmd, FlushCommand):
            self.service.flush(self.session.id)
        elif isinstance(cmd, StopCommand):
            self.service.stop(self.session.id)
        elif isinstance(cmd, KeepAliveCommand):
            self.service.keepalive(self.session.id)

    async def run(self) -> None:
        try:
            while True:
                msg = await self.ws.receive()
                if msg["type"] == "websocket.disconnect":
                    break
                try:
                    await self.handle(msg)
                except HubError as e:
                    await self.send_error(e)
                except Exception as e:  # never let one bad message take the connection down silently
                    log.exception("websocket message failed")
                    await self.send_error(HubError(ErrorCode.internal, f"internal error: {type(e).__name__}"))
        except (WebSocketDisconnect, RuntimeError):
            pass
        finally:
            if self.session is not None and not self.session.ended:
                self.service.detach(self.session.id)
            if self.sender is not None and not self.sender.done():
                self.sender.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self.sender


@router.websocket("/v1/ws")
async def websocket_endpoint(ws: WebSocket) -> None:
    hub = ws.app.state.hub
    await ws.accept()
    t0 = time.perf_counter()
    await WsConnection(ws, hub.service).run()
    log.debug("websocket closed after %.1f s", time.perf_counter() - t0)
