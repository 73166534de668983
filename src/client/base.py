"""The one client interface, over any transport: `StreamingClient.stream()` / `.session()` / `.transcribe()`.

A transport supplies a `Connection` (one live connection carrying one session: open with a start or a
resume, send audio / flush / stop, read events). `LiveSession` puts resume on top: when the connection
drops before `session.ended`, it reconnects and sends `start {resume: {session_id, last_seq}}`, and it
hands the application each event once, in seq order (events the hub replays are skipped by seq). Audio
that failed to send while the connection was down is sent again after the resume; audio that a dying
connection had already accepted may be lost (at most what was in flight).

Held audio (DESIGN §8): the session keeps the audio sent since the last final's `end_ms` (`HeldAudio`, at
most `replay_audio_s`). A hub answers every resume first with `session.started {seq: 0, resumed: true,
audio_from_ms}`: how much audio the session has received. The held audio from there is sent again
before anything else, so audio a dying connection (or relay node) had taken but not delivered is not lost,
and audio that did arrive is not sent twice; after a takeover `audio_from_ms` is where the new node's
timeline goes on, so the open utterance is decoded again. That answer is the client's, not the
application's (it is not yielded). A hub that does not answer so: the resumed connection brings
`session.migrated {audio_from_ms}` after a takeover, and sending waits for it for at most
`migration_wait_s`.

A resume refused for now with `retry_after_ms` (a session whose node died and whose lease has not run out:
it can move once it has) is tried again that much later, not on the generic backoff.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from typing import Any, ClassVar

from ..core.commands import ResumeSpec, StartSession
from ..core.errors import RETRYABLE
from ..core.events import ErrorEvent, Event, SessionEnded, SessionMigrated, SessionStarted, TranscriptFinal
from .audio import AudioSource, paced, prepare
from .errors import ConnectionLost, HubRequestError, ResumeFailed
from .held import HeldAudio
from .options import StartOptions, start_options

log = logging.getLogger(__name__)
_END = object()


class Connection(abc.ABC):
    """One connection carrying one session (a transport implements this)."""

    @abc.abstractmethod
    async def open(self, start: StartSession) -> str | None:
        """Connect and send `start` (new or resume). Returns the session id when the wire answers it
        directly (SSE, Socket.IO ack); raises HubRequestError when the hub refuses there and then."""

    @abc.abstractmethod
    def events(self) -> AsyncIterator[Event]:
        """The events this connection receives, until the hub ends the session (normal end of iteration);
        raises ConnectionLost when the connection drops first."""

    @abc.abstractmethod
    async def send_audio(self, data: bytes) -> None:
        """Raises ConnectionLost when the connection is gone."""

    @abc.abstractmethod
    async def flush(self) -> None: ...

    @abc.abstractmethod
    async def stop(self, again: bool = False) -> None:
        """`again`: this stop may repeat one the hub has (sent before the connection, or a relay node,
        died). A wire whose connection says so by itself (a resumed streaming connection) ignores it;
        HTTP + SSE sends `?again=true`."""

    @abc.abstractmethod
    async def keepalive(self) -> None:
        """No audio for a while, but keep the session open (resets its idle timer)."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Close without stopping the session (it stays resumable for limits.resume_window_s)."""

    #: a wire that answers a resume in its reply (HTTP + SSE: `answers_in_reply`) puts the answer's
    #: `audio_from_ms` here (None: the owner did not say); the others send it as the first event,
    #: `session.started {seq 0, resumed, audio_from_ms}`
    resumed_at_ms: int | None = None
    answers_in_reply = False


class LiveSession:
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

    def _resumed_at(self, audio_from_ms: int | None) -> None:
        """The hub answered this connection's resume: the session has received its audio up to
        `audio_from_ms`; send the held audio from there again, first."""
        self._answered = self._conn
        if self._settling is not None:
            self._settling.cancel()
        if audio_from_ms is None or not self.held.enabled:
            if not self._stop_sent:
                self._sendable.set()
                return
            self._sendable.clear()
            self._settling = asyncio.create_task(self._send_again(None))
            return
        self._sendable.clear()
        self._settling = asyncio.create_task(self._send_again(audio_from_ms))

    def _migrated(self, ev: SessionMigrated) -> None:
        """Another node took the session over: send the held audio from `audio_from_ms` again, first (unless
        the hub's answer to this connection's resume said from where already)."""
        self.migrations += 1
        if self._answered is not None and self._answered is self._conn:
            return
        self._sendable.clear()
        if self._settling is not None:
            self._settling.cancel()
        self._settling = asyncio.create_task(self._send_again(ev.audio_from_ms))

    async def _send_again(self, from_ms: int | None) -> None:
        """After a resume: the held audio from `from_ms` (None: none), then a stop sent before whose
        `session.ended` has not come (the connection or relay node that took it may have died first; the
        hub takes a repeated one quietly)."""
        data, gap = self.held.since(from_ms) if from_ms is not None else (b"", 0)
        conn = self._conn
        assert conn is not None
        if from_ms is not None:
            log.info("session %s resumed: sending %d bytes again from %d ms (%d ms no longer held)",
                     self.session_id, len(data), from_ms, gap)
        frame = self.held.frame
        step = frame * max(1, self.held.rate // 10) if frame else max(1, len(data))  # 100 ms a message
        try:
            for i in range(0, len(data), step):
                await conn.send_audio(data[i:i + step])
            self.replayed_ms += len(data) * 1000 // (self.held.rate * frame) if frame else 0
            if self._stop_sent and self.ended is None:  # after the audio
                await conn.stop(again=True)
            self.gap_ms += gap
        except ConnectionLost:
            pass  # the reader resumes; the new connection brings the takeover again if there was one
        except HubRequestError as e:  # (HTTP + SSE: refused in the reply) as `_call` reports it
            self._queue.put_nowait(ErrorEvent(session_id=self.session_id or "", code=e.code, message=e.message))
        finally:
            if self._settling is asyncio.current_task():  # (not when a newer takeover replaced it)
                self._sendable.set()

    async def _settle_after_resume(self, wait_s: float) -> None:
        """After a resume: no `session.migrated` within `wait_s` (migration_wait_s) means the session did not
        move. A resume that asked for the hub's answer (`held_audio`) waits for that answer instead (or for
        the refusal, or the connection's end), at most start_timeout_s; an HTTP + SSE reply that came without
        it (the owner did not answer in time, e.g. during a Redis failover) waits migration_wait_s: waiting
        longer kept the session's audio back until the hub ended it `idle`."""
        try:
            await asyncio.sleep(wait_s)
        except asyncio.CancelledError:
            return
        if self._settling is asyncio.current_task():
            await self._send_again(None)  # (a stop sent before, again; then sendable)

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

    def _refused_again(self, err: HubRequestError) -> None:
        """The hub refused a resume. A code that may pass (`RETRYABLE`: e.g. `internal` while a node cannot
        reach Redis during a primary failover) is tried again, at most max_reconnects times in a row;
        any other ends the session's iteration (ResumeFailed)."""
        self._refusals += 1
        self.refused.append(err)
        if isinstance(err, ResumeFailed) or err.code not in RETRYABLE or self._refusals > self.client.max_reconnects:
            raise ResumeFailed(f"session {self.session_id} cannot be resumed: {err}", err)
        if err.retry_after_ms is not None:
            self._retry_at = err.retry_after_ms / 1000

    def _signal(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    def _fail(self, e: BaseException) -> None:
        if not self._started.done():
            self._started.set_exception(e)
        self._failed = e
        self._queue.put_nowait(e)

    async def _resume(self, lost: BaseException) -> None:
        """Reconnect with `resume {session_id, last_seq}`; ResumeFailed after max_reconnects tries in a row
        with no event between them (a connection that opens but drops before the hub says anything, as a
        gRPC call to an address that refuses, counts as a failed try), or when the hub no longer holds the
        session."""
        old = self._conn
        if old is not None:
            with contextlib.suppress(Exception):
                await old.close()
        delay = min(self.client.reconnect_delay_s * 2 ** min(self._refusals, 5), 2.0)  # refused: back off more
        last: BaseException = lost
        while self._fruitless < self.client.max_reconnects:
            self._fruitless += 1
            wait, self._retry_at = (delay if self._retry_at is None else self._retry_at), None
            self.retry_waits.append(wait)
            await asyncio.sleep(wait)
            delay = min(delay * 2, 2.0)
            assert self.session_id is not None
            cmd = self.start_cmd.model_copy(update={"resume": ResumeSpec(
                session_id=self.session_id, last_seq=self.last_seq, held_audio=self.held.enabled)})
            conn = self.client.connection()
            try:
                await conn.open(cmd)
            except HubRequestError as e:
                with contextlib.suppress(Exception):
                    await conn.close()
                if e.code in ("session_not_found", "invalid_command", "unauthorized"):
                    raise ResumeFailed(f"session {self.session_id} cannot be resumed: {e}", e) from e
                self.refused.append(e)
                if e.retry_after_ms is not None:  # refused until then (a dead node's lease runs out)
                    self._retry_at = e.retry_after_ms / 1000
                last = e
                continue
            except (ConnectionLost, OSError) as e:
                with contextlib.suppress(Exception):
                    await conn.close()
                last = e
                continue
            self.reconnects += 1
            self.client.reconnects += 1
            log.info("session %s resumed after seq %d (%s)", self.session_id, self.last_seq, lost)
            if self.held.enabled:  # nothing goes out until it is known whether another node took over
                self._sendable.clear()
                if self._settling is not None:
                    self._settling.cancel()
                # the answer is still to come (as an event), or it came without audio_from_ms in the reply
                # (the owner did not answer in time): then only a takeover's session.migrated can follow
                unanswered = conn.answers_in_reply and conn.resumed_at_ms is None
                wait = self.client.migration_wait_s if unanswered else self.client.start_timeout_s
                self._settling = asyncio.create_task(self._settle_after_resume(wait))
            self._conn = conn
            if conn.resumed_at_ms is not None:  # (HTTP + SSE: answered in the resume's reply)
                self._resumed_at(conn.resumed_at_ms)
            elif not self.held.enabled and self._stop_sent:  # (no answer asked for: the stop again at once)
                self._resumed_at(None)
            self._signal()
            return
        raise ResumeFailed(f"session {self.session_id}: {self.client.max_reconnects} reconnects failed", last)

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
        if data:
            await self._call(lambda c: c.send_audio(data))
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
