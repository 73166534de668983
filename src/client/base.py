"""The one client interface, over any transport: `StreamingClient.stream()` / `.session()` / `.transcribe()`.

A transport supplies a `Connection` (one live connection carrying one session: open with a start or a
resume, send audio / flush / stop, read events). `LiveSession` puts resume on top: when the connection
drops before `session.ended`, it reconnects and sends `start {resume: {session_id, last_seq}}`, and it
hands the application each event once, in seq order (events the hub replays are skipped by seq). Audio
that failed to send while the connection was down is sent again after the resume; audio that a dying
connection had already accepted may be lost (at most what was in flight).

Held audio and resuming (DESIGN §8): client/resuming.py.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from typing import Any, ClassVar

from ..core.commands import StartSession
from ..core.events import ErrorEvent, Event, SessionEnded, SessionMigrated, SessionStarted, TranscriptFinal
from .audio import AudioSource, paced, prepare
from .connection import Connection
from .errors import ConnectionLost, HubRequestError
from .held import HeldAudio
from .options import StartOptions, start_options
from .resuming import Resuming

__all__ = ["Connection", "LiveSession", "StreamingClient"]

log = logging.getLogger(__name__)
_END = object()


class LiveSession(Resuming):
    """A started session: send audio and commands, iterate its events (each exactly once). Survives
    dropped connections by resuming."""

    def __init__(self, client: StreamingClient, start: StartSession) -> None:
        self.client = client
        self.start_cmd = start
        self.session_id: str | None = None
        self.last_seq = 0
        self.started: SessionStarted | None = None
        self.ended: SessionEnded | None = None
        self.reconnects = 0
        self._conn: Connection | None = None
        self._queue: asyncio.Queue[Any] = asyncio.Queue()
        self._changed = asyncio.Event()  # set (and replaced) whenever the connection or the session's fate changes
        self._failed: BaseException | None = None
        self._reader: asyncio.Task[None] | None = None
        self._started = asyncio.get_running_loop().create_future()
        self.held = HeldAudio(start.audio, client.replay_audio_s)
        self.migrations = 0      # takeovers of this session by another node, seen here
        self.replayed_ms = 0     # audio sent again after them (ms), gap included
        self.gap_ms = 0          # of which silence: audio no longer held
        self._sendable = asyncio.Event()  # clear after a resume until it is known whether the session moved
        self._sendable.set()
        self._settling: asyncio.Task[None] | None = None
        self._stop_sent = False
        self._fruitless = 0  # reconnects in a row that brought no event yet (bounded by max_reconnects)
        self._refusals = 0  # resumes refused with a retryable code since the last event
        self._retry_at: float | None = None  # a refusal's retry_after_ms (seconds): the next resume's wait
        self.retry_waits: list[float] = []  # the wait before each resume tried (seconds), in order
        self.refused: list[HubRequestError] = []  # resumes the hub refused for now (retryable), in order
        self._answered: Connection | None = None  # the connection whose resume the hub answered (seq 0)
        self._held_unknown = False  # the hub refused `resume.held_audio` (one from before it): resumes go without
        self._sending: bytes | None = None  # the audio `send` is sending now (a resume may cut it)
        self._landed = False  # ... and the answer to a resume says the hub has it all the same

    # -- lifecycle -------------------------------------------------------------------------------
    async def _begin(self) -> None:
        conn = self.client.connection()
        try:
            sid = await conn.open(self.start_cmd)
        except BaseException:
            with contextlib.suppress(Exception):
                await conn.close()
            raise
        self._conn = conn
        self.session_id = sid
        if self.start_cmd.resume is not None:
            self.session_id = self.start_cmd.resume.session_id
            self.last_seq = self.start_cmd.resume.last_seq
            self._started.set_result(None)
        self._reader = asyncio.create_task(self._read())
        try:
            await asyncio.wait_for(asyncio.shield(self._started), self.client.start_timeout_s)
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        """Stop reading and close the connection (without `stop`: use stop() to end the session)."""
        if self._settling is not None:
            self._settling.cancel()
        if self._reader is not None and not self._reader.done():
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reader
        if self._conn is not None:
            with contextlib.suppress(Exception):
                await self._conn.close()

    async def __aenter__(self) -> LiveSession:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- reading -----------------------------------------------------------------------------------
    def _accept(self, ev: Event) -> None:
        if isinstance(ev, ErrorEvent) and not ev.session_id:
            # an answer to our start or resume itself (the hub had no session to put it in)
            err = HubRequestError(ev.code, ev.message, retry_after_ms=ev.retry_after_ms)
            if not self._started.done():
                self._started.set_exception(err)
                return
            self._refused_again(err)
            raise ConnectionLost(f"the resume was refused for now: {err}")
        if ev.session_id and self.session_id is None:
            self.session_id = ev.session_id
        if isinstance(ev, SessionStarted) and ev.resumed and not ev.seq:
            self._resumed_at(ev.audio_from_ms)  # the hub's answer to this connection's resume (not the application's)
            return
        if ev.session_id and ev.seq:
            self._refusals = 0
            self._fruitless = 0  # the connection carries the session's events: a later drop reconnects afresh
            if ev.seq <= self.last_seq:
                return  # replayed after a resume: the application has it already
            self.last_seq = ev.seq
        if isinstance(ev, SessionStarted) and self.started is None:
            self.started = ev
        if not self._started.done() and self.started is not None:
            self._started.set_result(None)
        if isinstance(ev, SessionEnded):
            self.ended = ev
        if isinstance(ev, TranscriptFinal):
            self.held.settled(ev.end_ms)
        if isinstance(ev, SessionMigrated):
            self._migrated(ev)
        self._queue.put_nowait(ev)

    async def _read(self) -> None:
        try:
            while True:
                assert self._conn is not None
                try:
                    async for ev in self._conn.events():
                        self._accept(ev)
                        if self.ended is not None:
                            return
                    if self.ended is not None:
                        return
                    raise ConnectionLost("the connection ended before session.ended")
                except (ConnectionLost, HubRequestError) as lost:
                    if self.session_id is None or not self._started.done():
                        raise
                    if isinstance(lost, HubRequestError):  # (gRPC: the call refused with the hub's code)
                        self._refused_again(lost)
                    await self._resume(lost)
        except asyncio.CancelledError:
            self._fail(ConnectionLost("the session was closed"))
            raise
        except Exception as e:
            self._fail(e)
        finally:
            self._queue.put_nowait(_END)
            self._sendable.set()  # a sender waiting for a resend learns of the end (or failure) now
            self._signal()

    def _fail(self, e: BaseException) -> None:
        if not self._started.done():
            self._started.set_exception(e)
        self._failed = e
        self._queue.put_nowait(e)

    async def __anext__(self) -> Event:
        item = await self._queue.get()
        if item is _END:
            self._queue.put_nowait(_END)
            raise StopAsyncIteration
        if isinstance(item, BaseException):
            raise item
        return item  # type: ignore[no-any-return]

    def __aiter__(self) -> LiveSession:
        return self

    # -- sending -----------------------------------------------------------------------------------
    async def _call(self, op: Callable[[Connection], Awaitable[None]]) -> None:
        """Run op on the live connection; when it is lost, wait for the resume and run it again there. A
        command the hub answers with an error (HTTP+SSE) becomes an `error` event in the stream (seq 0), as
        the other wires report it."""
        while True:
            if self._failed is not None:
                raise self._failed
            if self.ended is not None:
                raise HubRequestError("invalid_command", f"session '{self.session_id}' has ended "
                                      f"(reason {self.ended.reason}); no more audio or commands")
            if not self._sendable.is_set():
                await self._sendable.wait()
                continue
            conn = self._conn
            assert conn is not None
            try:
                await op(conn)
                return
            except HubRequestError as e:
                self._queue.put_nowait(ErrorEvent(session_id=self.session_id or "", code=e.code, message=e.message))
                return
            except ConnectionLost:
                # wait for the reader: it resumes (a new connection), fails, or sees the session end
                while self._conn is conn and self._failed is None and self.ended is None \
                        and self._reader is not None and not self._reader.done():
                    await self._changed.wait()

    async def send(self, data: bytes) -> None:
        if not data:
            return
        self._sending, self._landed = data, False

        async def op(c: Connection) -> None:
            if not self._landed:  # (cut, and the resume's answer says the hub has it: not twice)
                await c.send_audio(data)

        try:
            await self._call(op)
        finally:
            self._sending = None
        self.held.add(data)

    async def flush(self) -> None:
        await self._call(lambda c: c.flush())

    async def stop(self) -> None:
        tries = 0

        async def op(c: Connection) -> None:
            nonlocal tries
            tries += 1
            await c.stop(again=tries > 1)  # (sent again on a new connection: the first may have arrived)

        await self._call(op)
        self._stop_sent = True

    async def keepalive(self) -> None:
        """Pausing the audio: keep the session from being ended as idle (start option idle_timeout_s)."""
        await self._call(lambda c: c.keepalive())


class StreamingClient(abc.ABC):
    """One interface over every streaming transport; subclasses supply `connection()`.

    `api_key` is an API key or a short-lived token from POST /v1/tokens (either is sent where that
    transport carries credentials). Each stream()/session() call opens its own connection, so one client
    serves many sessions, concurrently too."""

    transport: ClassVar[str] = "?"

    def __init__(self, *, api_key: str | None = None, max_reconnects: int = 5, reconnect_delay_s: float = 0.2,
                 start_timeout_s: float = 30.0, busy_retries: int = 3, busy_delay_s: float = 0.5,
                 replay_audio_s: float = 30.0, migration_wait_s: float = 0.5) -> None:
        """`replay_audio_s`: the most audio each session holds for a takeover (the hub's
        `limits.replay_audio_s`; 0: none). `migration_wait_s`: after a resume, how long sending waits for
        word of a takeover."""
        self.api_key = api_key
        self.replay_audio_s = replay_audio_s
        self.migration_wait_s = migration_wait_s
        self.busy_retries = busy_retries    # starts refused with too_many_sessions are tried again ...
        self.busy_delay_s = busy_delay_s    # ... after this, doubling each time
        self.max_reconnects = max_reconnects
        self.reconnect_delay_s = reconnect_delay_s
        self.start_timeout_s = start_timeout_s
        self.reconnects = 0  # resumes after dropped connections, over all sessions of this client

    @abc.abstractmethod
    def connection(self) -> Connection: ...

    async def session(self, options: StartOptions | None = None, **fields: Any) -> LiveSession:
        """Start (or, with `resume=`, resume) a session; returns once the hub has started it. Use it as
        `async with await client.session(...) as s:` and iterate `s` for its events."""
        opts = start_options(options, fields)
        delay = self.busy_delay_s
        for attempt in range(self.busy_retries + 1):
            s = LiveSession(self, opts)
            try:
                await s._begin()
                return s
            except HubRequestError as e:  # a hub at capacity says so at once: come back shortly
                if e.code != "too_many_sessions" or attempt == self.busy_retries:
                    raise
            await asyncio.sleep(delay)
            delay *= 2
        raise AssertionError("unreachable")

    async def stream(self, audio: AudioSource, options: StartOptions | None = None, *, realtime: float | None = None,
                     chunk_ms: int = 100, **fields: Any) -> AsyncGenerator[Event, None]:
        """Send `audio` (bytes, a file path, or an (async) iterator of chunks) in one session, then `stop`;
        yield every event of the session once, in order, up to `session.ended`. `realtime` paces PCM and
        WAV at that multiple of real time (None: as fast as the connection takes it)."""
        opts = start_options(options, fields)
        declared = opts.audio if "audio" in opts.model_fields_set else None
        prepared = prepare(audio, declared, chunk_ms)
        opts = opts.model_copy(update={"audio": prepared.spec})
        s = await self.session(opts)
        sender = asyncio.create_task(self._send_all(s, paced(prepared.chunks, prepared.bytes_per_s, realtime)))
        try:
            async for ev in s:
                yield ev
            if not sender.done():
                sender.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sender
        finally:
            if not sender.done():
                sender.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await sender
            await s.close()

    @staticmethod
    async def _send_all(s: LiveSession, chunks: AsyncIterator[bytes]) -> None:
        try:
            async for chunk in chunks:
                await s.send(chunk)
            await s.stop()
        except Exception as e:  # the audio source (or a send) failed: the iteration raises it now
            if e is not s._failed:  # (a failed session has queued its own error already)
                s._queue.put_nowait(e)

    async def transcribe(self, audio: AudioSource, options: StartOptions | None = None, **kw: Any) -> str:
        """The session's final transcripts joined by spaces."""
        finals = [ev.text async for ev in self.stream(audio, options, **kw) if isinstance(ev, TranscriptFinal)]
        return " ".join(t.strip() for t in finals if t.strip())

    async def aclose(self) -> None:  # noqa: B027 (transports with shared resources override it)
        """Release shared resources (none by default: each session owns its connection)."""

    async def __aenter__(self) -> StreamingClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
