"""Socket.IO transport, namespace `/asr` (DESIGN §3.5), mounted in the same app and port at /socket.io.

Client emits `start` (StartSession; the ack answers `{session_id}` or `{error: {code, message}}`),
`audio` (binary), `flush`, `stop`, `keepalive`. The hub emits every session event under its `type` as the event name,
with the event as payload, to that client's sid only (each sid is its own room). A disconnect detaches
the session (resume with `start` + `resume` within the resume window). With API keys configured, the
connect packet must carry `auth: {token: <key>}` (a refused connect's `connect_error` has data
`{code, message}`).

Backpressure: python-engineio queues outgoing packets in an unbounded per-socket asyncio.Queue, so the
event pump waits (see `AsrNamespace.sendable`) until the client has taken what is queued; events it has
not taken stay in the session's channel, bounded by `limits.max_events_buffered`. A client that stops
reading is therefore cut off with the fatal `internal` error, exactly like a WebSocket client.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

import socketio

from ..core.auth import Authenticator, bearer, key_id
from ..core.commands import parse_start
from ..core.config import HubConfig
from ..core.errors import ErrorCode, HubError
from ..core.events import Event
from ..engine.service import SessionService
from .binding import SessionBinding
from .brief_log import BriefLogger
from .engineio_guard import GuardedApp
from .errors import error_event

log = logging.getLogger(__name__)

NAMESPACE = "/asr"
# At most this many packets wait in one client's engine.io send queue before the pump holds off. Small
# next to limits.max_events_buffered (at least 64), which bounds what waits behind them in the channel.
SEND_QUEUE_MAX = 32
# Replies python-socketio queues by itself (acks, errors outside a live session) cannot wait without
# stalling the client's read loop: a client with this many packets unread has its WebSocket closed.
SEND_QUEUE_LIMIT = 1024


@dataclass
class SioConnection:
    bind: SessionBinding
    pump: asyncio.Task[None] | None = None
    asgi_send: Any = None  # the ASGI send of a direct WebSocket connection (to close it under the queue)
    cut_off: bool = False



class AsrNamespace:
    """Handlers of the `/asr` namespace; one SioConnection per connected sid."""

    def __init__(self, sio: socketio.AsyncServer, service: SessionService, auth: Authenticator | None = None) -> None:
        self.sio = sio
        self.service = service
        self.auth = auth
        self.conns: dict[str, SioConnection] = {}
        self._closing: set[asyncio.Task[Any]] = set()
        for name, fn in (("connect", self.on_connect), ("disconnect", self.on_disconnect), ("start", self.on_start),
                         ("audio", self.on_audio), ("flush", self.on_flush), ("stop", self.on_stop),
                         ("keepalive", self.on_keepalive), ("*", self.on_unknown)):
            sio.on(name, fn, namespace=NAMESPACE)

    async def on_connect(self, sid: str, environ: dict[str, Any], auth: Any = None) -> None:
        """The API key comes in the connect packet's auth `{token}` (or Authorization / ?token=)."""
        token = auth.get("token") if isinstance(auth, dict) else None
        token = token or bearer(environ.get("HTTP_AUTHORIZATION"))
        token = token or (parse_qs(environ.get("QUERY_STRING", "")).get("token") or [None])[0]
        try:
            key = key_id(self.auth.authenticate(token, "start", "Socket.IO")) if self.auth is not None else None
        except HubError as e:
            # the client's connect_error carries message and data {code, message}
            raise socketio.exceptions.ConnectionRefusedError(e.message, {"code": e.code.value,
                                                                         "message": e.message}) from None
        scope = environ.get("asgi.scope") or {}
        self.conns[sid] = SioConnection(SessionBinding(self.service, "socketio", key, verb="emit"),
                                        asgi_send=environ.get("asgi.send") if scope.get("type") == "websocket" else None)

    async def on_disconnect(self, sid: str, reason: Any = None) -> None:
        conn = self.conns.pop(sid, None)
        if conn is None:
            return
        conn.bind.detach()
        if conn.pump is not None and not conn.pump.done():
            conn.pump.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await conn.pump

    async def sendable(self, sid: str) -> bool:
        """Wait while this client's engine.io send queue holds SEND_QUEUE_MAX packets or more, until it is
        empty; False when the client is gone.

        `sio.emit` only appends to engine.io's per-socket asyncio.Queue (unbounded) and returns. Its
        consumer calls `task_done()` for every packet it takes: the websocket writer task takes the next
        batch only once its `ws.send` of the previous one returned, and that send waits while the
        connection's transport is paused (the client is not reading; uvicorn pauses at its write buffer's
        high-water mark); a long-polling client takes the queue with each GET. So `queue.join()` returns
        only as fast as the client takes packets, without polling. Meanwhile the pump takes nothing from
        the channel, which overflows for a client that does not read (fatal `internal` error, session
        ended). A disconnect cancels the pump (on_disconnect), which ends a pending join.
        """
        sock = self._socket(sid)
        if sock is None or sock.closing or sock.closed:
            return False
        queue: asyncio.Queue[Any] = sock.queue
        if queue.qsize() >= SEND_QUEUE_MAX:
            await queue.join()
        return not (sock.closing or sock.closed)

    def _socket(self, sid: str) -> Any:
        """The client's engine.io socket (None once it is gone)."""
        eio_sid = self.sio.manager.eio_sid_from_sid(sid, NAMESPACE)
        return self.sio.eio.sockets.get(eio_sid) if eio_sid is not None else None

    def not_reading(self, sid: str) -> bool:
        """True when SEND_QUEUE_LIMIT packets wait for this client: it sends but does not read. Its
        WebSocket is closed at the ASGI level (engine.io's own close would wait for the queue to drain,
        which never happens); the disconnect that follows detaches its session as usual."""
        conn = self.conns.get(sid)
        if conn is None:
            return False
        if conn.cut_off:
            return True  # its close is under way; answer nothing more
        sock = self._socket(sid)
        if sock is None or sock.queue.qsize() < SEND_QUEUE_LIMIT:
            return False
        conn.cut_off = True
        log.warning("socket.io client %s has %d packets unread; closing its connection", sid, sock.queue.qsize())
        if conn.asgi_send is not None:
            task = asyncio.create_task(conn.asgi_send({"type": "websocket.close", "code": 1008,
                                                       "reason": "client is not reading"}))
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)
        return True

    async def pump(self, sid: str, bind: SessionBinding, after_seq: int) -> None:
        async def send(ev: Event) -> bool:
            if not await self.sendable(sid):
                return False  # the client is gone; on_disconnect detaches the session
            await self.sio.emit(ev.type, ev.to_dict(), to=sid, namespace=NAMESPACE)
            return True

        try:
            await bind.pump(send, after_seq)
            if bind.moved:  # another node took the session over: the client resumes (anywhere)
                await self.sio.disconnect(sid, namespace=NAMESPACE)
        except Exception:  # the client went away mid-emit; disconnect handling detaches
            log.debug("socket.io pump for %s ended", sid, exc_info=True)

    async def send_error(self, sid: str, err: HubError) -> None:
        conn = self.conns.get(sid)
        direct = conn.bind.fail(err) if conn is not None else error_event(err)
        if direct is not None:
            await self.sio.emit("error", direct.to_dict(), to=sid, namespace=NAMESPACE)

    async def on_start(self, sid: str, data: Any = None) -> dict[str, Any]:
        conn = self.conns.get(sid)
        if conn is None:
            return _ack_error(HubError(ErrorCode.invalid_command, "not connected to /asr"))
        if self.not_reading(sid):
            return _ack_error(NOT_READING)
        try:
            session_id, after = await conn.bind.start(parse_start(data if data is not None else {}))
        except HubError as e:
            return _ack_error(e)
        except Exception as e:
            return _ack_error(conn.bind.internal(e, "start"))
        if conn.pump is not None and not conn.pump.done():
            conn.pump.cancel()
        conn.pump = asyncio.create_task(self.pump(sid, conn.bind, after))
        return {"session_id": session_id}

    async def _command(self, sid: str, name: str, data: Any = None) -> dict[str, Any]:
        """audio / flush / stop. Errors go out as `error` events (and in the ack, when one was asked)."""
        conn = self.conns.get(sid)
        if self.not_reading(sid):
            return _ack_error(NOT_READING)
        try:
            if conn is None:
                raise HubError(ErrorCode.invalid_command, "not connected to /asr")
            if name == "audio":
                if not isinstance(data, bytes | bytearray | memoryview):
                    raise HubError(ErrorCode.invalid_audio, "audio must be sent as binary data")
                conn.bind.audio(bytes(data))
            elif name == "flush":
                conn.bind.flush()
            elif name == "keepalive":
                conn.bind.keepalive()
            else:
                conn.bind.stop()
        except HubError as e:
            await self.send_error(sid, e)
            return _ack_error(e)
        except Exception as e:
            err = conn.bind.internal(e, name) if conn is not None else HubError(ErrorCode.internal, "internal error")
            await self.send_error(sid, err)
            return _ack_error(err)
        return {"ok": True}

    async def on_audio(self, sid: str, data: Any = None) -> dict[str, Any]:
        return await self._command(sid, "audio", data)

    async def on_flush(self, sid: str, data: Any = None) -> dict[str, Any]:
        return await self._command(sid, "flush")

    async def on_stop(self, sid: str, data: Any = None) -> dict[str, Any]:
        return await self._command(sid, "stop")

    async def on_keepalive(self, sid: str, data: Any = None) -> dict[str, Any]:
        return await self._command(sid, "keepalive")

    async def on_unknown(self, event: str, sid: str, *args: Any) -> dict[str, Any]:
        if self.not_reading(sid):
            return _ack_error(NOT_READING)
        err = HubError(ErrorCode.invalid_command, f"unknown command {event!r} (expected start, audio, flush, stop, keepalive)")
        await self.send_error(sid, err)
        return _ack_error(err)


NOT_READING = HubError(ErrorCode.slow_consumer, "client is not reading")


def _ack_error(err: HubError) -> dict[str, Any]:
    body: dict[str, Any] = {"code": err.code.value, "message": err.message}
    if err.retry_after_ms is not None:  # a refused resume: when to try again
        body["retry_after_ms"] = err.retry_after_ms
    return {"error": body}


def create_socketio_app(service: SessionService, config: HubConfig,
                        auth: Authenticator | None = None) -> tuple[socketio.AsyncServer, Any]:
    """The Socket.IO server and its ASGI app, to be mounted at /socket.io of the main app.

    CORS for the HTTP long-polling transport is left to the main app's CORS middleware (one policy for
    every route), so Engine.IO's own CORS handling is off.
    """
    sio = socketio.AsyncServer(async_mode="asgi", cors_allowed_origins=[], async_handlers=False,
                               max_http_buffer_size=config.limits.max_message_bytes + 64 * 1024,
                               # a malformed packet is one rate-limited line, never a traceback per packet
                               logger=BriefLogger("asrhub.socketio.lib"),
                               engineio_logger=(engineio_log := BriefLogger("asrhub.socketio.engineio")))
    AsrNamespace(sio, service, auth)
    return sio, GuardedApp(socketio.ASGIApp(sio, socketio_path="socket.io"), engineio_log)
