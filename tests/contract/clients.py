"""One transport-neutral client interface, implemented once per streaming transport.

The conformance suite (test_conformance.py) and the transport bench are written against `Client` only.
Every client collects the events of its connection as JSON-shaped dicts (`events`, with the arrival
time of each in `arrivals`) and every error it is told about, whether it came as an `error` event or as
an HTTP error answer (`errors`, an asyncio.Queue of {"code", "message", ...}).

Where a wire cannot express a bad input literally, the client sends that wire's nearest equivalent
(documented on each method) and the hub must answer it with the same error code.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from typing import Any

from tests.support import paced, until

PCM16 = {"encoding": "pcm_s16le", "sample_rate": 16000, "channels": 1}


# What a wire can express beyond the contract's common core. The conformance tests that need one declare it
# in their parametrisation (`transports(...)`), so a wire without it is not a test at all, never a skip.
SESSION_STREAM = "session_stream"  # session.started/ended, session_id, seq, ts, provider, stats on every event
START_COMMAND = "start_command"  # `start` is a message on an open connection (twice, before audio, resume...)
RESUME = "resume"  # a dropped session is resumed, its missed events replayed
WHOLE_SAMPLES = "whole_samples"  # audio that is not whole samples is refused
STOP_REFUSED_TWICE = "stop_refused_twice"  # a second `stop` is an error (Deepgram ignores a second CloseStream)
HUB_FEATURES = frozenset({SESSION_STREAM, START_COMMAND, RESUME, WHOLE_SAMPLES, STOP_REFUSED_TWICE})


class Client(abc.ABC):
    name = "?"
    features: frozenset[str] = HUB_FEATURES

    def __init__(self, hub: Any) -> None:
        self.hub = hub
        self.session_id: str | None = None
        self.events: list[dict[str, Any]] = []
        self.arrivals: list[float] = []
        self.stream_opened = 0.0  # time.time() when the connection that carries events was last opened
        self.errors: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._ended = asyncio.Event()
        self._got = asyncio.Event()

    # -- collected events ------------------------------------------------------------------
    def _on_event(self, ev: dict[str, Any], arrived: float | None = None) -> None:
        self.arrivals.append(time.time() if arrived is None else arrived)
        self.events.append(ev)
        if ev.get("type") == "error":
            self.errors.put_nowait({"code": ev.get("code"), "message": ev.get("message"), "event": ev})
        if ev.get("type") == "session.ended":
            self._ended.set()
        self._got.set()

    def _on_http_error(self, status: int, body: Any) -> None:
        err = body.get("error") if isinstance(body, dict) else None
        if not isinstance(err, dict):
            err = {"code": f"http_{status}", "message": str(body)}
        self.errors.put_nowait({"code": err.get("code"), "message": err.get("message"), "status": status})
        self._got.set()  # wakes a waiter that waits for an error too

    async def next_error(self, wait_s: float = 10.0) -> dict[str, Any]:
        return await asyncio.wait_for(self.errors.get(), wait_s)

    async def wait_ended(self, wait_s: float = 120.0) -> list[dict[str, Any]]:
        await asyncio.wait_for(self._ended.wait(), wait_s)
        return self.session_events()

    async def wait_for(self, pred: Any, wait_s: float = 30.0) -> dict[str, Any]:
        """The first received event matching pred (waiting for it if needed)."""
        try:
            return await until(lambda: next((ev for ev in self.events if pred(ev)), None), self._got,
                               timeout=wait_s, what="a matching event")
        except AssertionError:
            raise TimeoutError(f"{self.name}: no matching event in {wait_s} s; got {self.types()}") from None

    def session_events(self) -> list[dict[str, Any]]:
        """Events of this client's session (errors outside a session have session_id "")."""
        return [e for e in self.events if e.get("session_id") and e.get("session_id") == self.session_id]

    def types(self) -> list[str]:
        return [e.get("type", "?") for e in self.events]

    def _start_waiter(self, body: dict[str, Any]) -> Any:
        """For wires where `start` has no direct answer: wait for session.started (new session), the first
        replayed event or a quiet second (resume), or an error."""
        n_err = self.errors.qsize()
        n_ev = len(self.events)
        resume = body.get("resume")
        self.session_id = resume["session_id"] if resume else None

        def outcome() -> str | None:
            if self.errors.qsize() > n_err:
                return "error"
            if resume and any(e.get("session_id") == self.session_id for e in self.events[n_ev:]):
                return "resumed"
            if not resume and self.session_id:
                return "started"
            return None

        async def wait() -> str | None:
            try:  # each event (an error event too) wakes the check
                got = await until(outcome, self._got, timeout=2.0 if resume else 30.0, what="the start's answer")
            except AssertionError:
                return self.session_id if resume else None
            if got == "error":
                if not resume:
                    self.session_id = None
                return None
            return self.session_id

        return wait()

    # -- commands --------------------------------------------------------------------------
    async def connect(self) -> None:  # noqa: B027 (HTTP has nothing to open)
        """Open the connection (no-op for HTTP)."""

    @abc.abstractmethod
    async def start(self, body: dict[str, Any]) -> str | None:
        """Open (or resume) a session; its id, or None when the hub refused (the error is queued)."""

    @abc.abstractmethod
    async def start_again(self, body: dict[str, Any]) -> None:
        """A second `start` while this client's session is live (its answer is an error)."""

    @abc.abstractmethod
    async def send_audio(self, data: bytes) -> None: ...

    @abc.abstractmethod
    async def flush(self) -> None: ...

    @abc.abstractmethod
    async def stop(self) -> None: ...

    @abc.abstractmethod
    async def keepalive(self) -> None:
        """No audio for a while: reset the session's idle timer."""

    @abc.abstractmethod
    async def send_malformed(self) -> None:
        """A command that is not even parseable (non-JSON text)."""

    @abc.abstractmethod
    async def send_unknown_command(self) -> None:
        """A well-formed command the contract does not define (after start)."""

    async def audio_to_unknown_session(self, session_id: str, data: bytes) -> None:
        """Connection-bound wires address a session only through `start` + `resume`."""
        await self.start({"resume": {"session_id": session_id, "last_seq": 0}})

    @abc.abstractmethod
    async def drop(self) -> None:
        """Lose the connection without stopping (the session is detached, resumable)."""

    @abc.abstractmethod
    async def close(self) -> None: ...

    async def stream(self, pcm: bytes, chunk_bytes: int = 1280, realtime: float = 2.0,
                     bytes_per_s: int = 32000) -> None:
        """Send audio in chunks at `realtime` x real-time pace (0 = as fast as possible)."""
        async for piece in paced(pcm, chunk_bytes, realtime=realtime, bytes_per_s=bytes_per_s):
            await self.send_audio(piece)


# ---------------------------------------------------------------------------------------------
class WsClient(Client):
    name = "websocket"

    def __init__(self, hub: Any) -> None:
        super().__init__(hub)
        self.ws: Any = None
        self.reader: asyncio.Task[None] | None = None

    async def connect(self) -> None:
        import websockets
        self.ws = await websockets.connect(self.hub.ws, max_size=None)
        self.stream_opened = time.time()
        self.reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        with contextlib.suppress(Exception):
            async for msg in self.ws:
                ev = json.loads(msg)
                if ev.get("type") == "session.started" and not self.session_id:
                    self.session_id = ev["session_id"]
                self._on_event(ev)

    async def start(self, body: dict[str, Any]) -> str | None:
        waiter = self._start_waiter(body)
        await self.start_again(body)
        return await waiter

    async def start_again(self, body: dict[str, Any]) -> None:
        await self.ws.send(json.dumps({"type": "start", **body}))

    async def send_audio(self, data: bytes) -> None:
        await self.ws.send(data)

    async def flush(self) -> None:
        await self.ws.send(json.dumps({"type": "flush"}))

    async def stop(self) -> None:
        await self.ws.send(json.dumps({"type": "stop"}))

    async def keepalive(self) -> None:
        await self.ws.send(json.dumps({"type": "keepalive"}))

    async def send_malformed(self) -> None:
        await self.ws.send("this is not json")

    async def send_unknown_command(self) -> None:
        await self.ws.send(json.dumps({"type": "rewind"}))

    async def drop(self) -> None:
        await self.close()

    async def close(self) -> None:
        if self.ws is not None:
            with contextlib.suppress(Exception):
                await self.ws.close()
        if self.reader is not None:
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await asyncio.wait_for(self.reader, 5)


# ---------------------------------------------------------------------------------------------
class SseClient(Client):
    """HTTP + SSE: commands are requests; their errors are HTTP answers; events come over SSE."""

    name = "sse"

    def __init__(self, hub: Any) -> None:
        super().__init__(hub)
        import httpx
        self.http = httpx.AsyncClient(base_url=hub.http, timeout=httpx.Timeout(30.0, read=None))
        self.reader: asyncio.Task[None] | None = None
        self.last_id = 0
        self.audio_url = ""

    async def _post(self, url: str, **kw: Any) -> Any:
        r = await self.http.post(url, **kw)
        if r.status_code >= 400:
            try:
                body = r.json()
            except ValueError:
                body = r.text
            self._on_http_error(r.status_code, body)
        return r

    async def start(self, body: dict[str, Any]) -> str | None:
        r = await self._post("/v1/sessions", json=body)
        if r.status_code >= 400:
            return None
        info = r.json()
        self.session_id = info["session_id"]
        self.audio_url = info["audio_url"]
        after = body["resume"]["last_seq"] if body.get("resume") else 0
        await self.open_events(after)
        return self.session_id

    async def open_events(self, last_event_id: int = 0, wait: bool = True) -> None:
        opened = asyncio.Event()
        self.reader = asyncio.create_task(self._read(last_event_id, opened))
        if wait:
            await asyncio.wait_for(opened.wait(), 10)

    async def _read(self, last_event_id: int, opened: asyncio.Event) -> None:
        headers = {"Last-Event-ID": str(last_event_id)} if last_event_id else {}
        async with self.http.stream("GET", f"/v1/sessions/{self.session_id}/events", headers=headers) as r:
            self.stream_opened = time.time()
            opened.set()
            if r.status_code != 200:
                return
            fields: dict[str, str] = {}
            async for line in r.aiter_lines():
                if line == "":
                    if "data" in fields:
                        ev = json.loads(fields["data"])
                        assert fields.get("event") == ev["type"] and fields.get("id") == str(ev["seq"]), fields
                        self.last_id = ev["seq"]
                        self._on_event(ev)
                    fields = {}
                elif line.startswith(":"):
                    continue  # keep-alive comment
                else:
                    key, _, value = line.partition(":")
                    fields[key] = value[1:] if value.startswith(" ") else value

    async def start_again(self, body: dict[str, Any]) -> None:
        """HTTP has no connection to start twice on: `start` addressed to the live session."""
        await self._post(f"/v1/sessions/{self.session_id}/start", json=body)

    async def send_audio(self, data: bytes) -> None:
        await self._post(f"/v1/sessions/{self.session_id}/audio", content=data,
                         headers={"content-type": "application/octet-stream"})

    async def flush(self) -> None:
        await self._post(f"/v1/sessions/{self.session_id}/flush")

    async def stop(self) -> None:
        await self._post(f"/v1/sessions/{self.session_id}/stop")

    async def keepalive(self) -> None:
        r = await self._post(f"/v1/sessions/{self.session_id}/keepalive")
        assert r.status_code >= 400 or r.status_code == 202, (r.status_code, r.text)

    async def send_malformed(self) -> None:
        await self._post("/v1/sessions", content=b"this is not json", headers={"content-type": "application/json"})

    async def send_audio_before_start(self, data: bytes) -> None:
        """No session yet: the audio goes to the only URL there is, the session-creating one."""
        await self._post("/v1/sessions", content=data, headers={"content-type": "application/octet-stream"})

    async def send_unknown_command(self) -> None:
        await self._post(f"/v1/sessions/{self.session_id}/rewind")

    async def audio_to_unknown_session(self, session_id: str, data: bytes) -> None:
        await self._post(f"/v1/sessions/{session_id}/audio", content=data,
                         headers={"content-type": "application/octet-stream"})

    async def drop(self) -> None:
        await self.drop_events()

    async def drop_events(self) -> None:
        if self.reader is not None:
            self.reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self.reader
            self.reader = None

    async def close(self) -> None:
        if self.reader is not None and not self._ended.is_set():
            await self.drop_events()
        elif self.reader is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.reader, 5)
        await self.http.aclose()


# ---------------------------------------------------------------------------------------------
class SioClient(Client):
    name = "socketio"
    NS = "/asr"

    def __init__(self, hub: Any) -> None:
        super().__init__(hub)
        import socketio
        self.sio = socketio.AsyncClient(reconnection=False)
        self.sio.on("*", self._any, namespace=self.NS)

    async def _any(self, event: str, data: Any = None) -> None:
        ev = dict(data) if isinstance(data, dict) else {"type": event, "payload": data}
        assert ev.get("type") == event, (event, ev)
        self._on_event(ev)

    async def connect(self) -> None:
        await self.sio.connect(self.hub.http, namespaces=[self.NS], transports=["websocket"], wait_timeout=10)
        self.stream_opened = time.time()

    async def _ack(self, event: str, data: Any = None) -> Any:
        ack = await self.sio.call(event, data, namespace=self.NS, timeout=30)
        if isinstance(ack, dict) and isinstance(ack.get("error"), dict) and event == "start":
            self.errors.put_nowait({"code": ack["error"].get("code"), "message": ack["error"].get("message"),
                                    "ack": True})
        return ack

    async def start_again(self, body: dict[str, Any]) -> None:
        await self._ack("start", body)

    async def start(self, body: dict[str, Any]) -> str | None:
        ack = await self._ack("start", body)
        if isinstance(ack, dict) and ack.get("session_id"):
            self.session_id = ack["session_id"]
            return self.session_id
        return None

    async def send_audio(self, data: bytes) -> None:
        await self.sio.emit("audio", data, namespace=self.NS)

    async def flush(self) -> None:
        await self.sio.emit("flush", namespace=self.NS)

    async def stop(self) -> None:
        await self.sio.emit("stop", namespace=self.NS)

    async def keepalive(self) -> None:
        await self.sio.emit("keepalive", namespace=self.NS)

    async def send_malformed(self) -> None:
        """Socket.IO frames JSON itself; the nearest thing is a start whose payload is a bare string."""
        await self._ack("start", "this is not json")

    async def send_unknown_command(self) -> None:
        await self.sio.emit("rewind", {}, namespace=self.NS)

    async def drop(self) -> None:
        await self.close()

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self.sio.disconnect()


# ---------------------------------------------------------------------------------------------
from tests.contract.deepgram_client import DeepgramClient  # noqa: E402 (it subclasses Client, defined above)
from tests.contract.grpc_client import GrpcClient  # noqa: E402 (it subclasses Client, defined above)

# The hub's own wires: every contract test that iterates CLIENTS runs over these.
CLIENTS: dict[str, type[Client]] = {c.name: c for c in (WsClient, SseClient, SioClient, GrpcClient)}
# The conformance suite's wires: the hub's own, and Deepgram's socket where its semantics allow.
CONFORMANCE_CLIENTS: dict[str, type[Client]] = {**CLIENTS, DeepgramClient.name: DeepgramClient}


def transports(*needs: str) -> list[str]:
    """The conformance wires that express every feature in `needs` (the others are not parameters at all)."""
    return [name for name, c in CONFORMANCE_CLIENTS.items() if set(needs) <= c.features]


@contextlib.asynccontextmanager
async def connected(hub: Any, transport: str) -> AsyncIterator[Client]:
    """A connected client of `transport` on `hub`, closed afterwards."""
    c = CONFORMANCE_CLIENTS[transport](hub)
    await c.connect()
    try:
        yield c
    finally:
        await c.close()
