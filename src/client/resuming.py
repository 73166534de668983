"""Resuming a `LiveSession` (client/base.py): reconnecting after a dropped connection, and settling what
is sent again once the hub has answered.

Held audio (DESIGN §8): the session keeps the audio sent since the last final's `end_ms` (`HeldAudio`, at
most `replay_audio_s`). A hub answers every resume first with `session.started {seq: 0, resumed: true,
audio_from_ms}`: how much audio the session has received. The held audio from there is sent again
before anything else, so audio a dying connection (or relay node) had taken but not delivered is not lost,
and audio that did arrive is not sent twice; after a takeover `audio_from_ms` is where the new node's
timeline goes on, so the open utterance is decoded again. That answer is the client's, not the
application's (it is not yielded). A hub that does not answer so: the resumed connection brings
`session.migrated {audio_from_ms}` after a takeover, and sending waits for it for at most
`migration_wait_s`. A `stop` sent before whose `session.ended` has not come is sent again after any resume.

A resume refused for now with `retry_after_ms` (a session whose node died and whose lease has not run out:
it can move once it has) is tried again that much later, not on the generic backoff.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any, Protocol

from ..core.commands import ResumeSpec, StartSession
from ..core.errors import RETRYABLE
from ..core.events import ErrorEvent, SessionEnded, SessionMigrated
from .connection import Connection
from .errors import ConnectionLost, HubRequestError, ResumeFailed
from .held import HeldAudio

log = logging.getLogger(__name__)


class ResumeClient(Protocol):
    """What resuming needs of the client (`StreamingClient`)."""

    max_reconnects: int
    reconnect_delay_s: float
    start_timeout_s: float
    migration_wait_s: float
    reconnects: int

    def connection(self) -> Connection: ...


class Resuming:
    """The resume half of `LiveSession` (which sets every attribute below in its __init__)."""

    client: ResumeClient
    start_cmd: StartSession
    session_id: str | None
    last_seq: int
    ended: SessionEnded | None
    reconnects: int
    held: HeldAudio
    migrations: int
    replayed_ms: int
    gap_ms: int
    refused: list[HubRequestError]
    retry_waits: list[float]
    _conn: Connection | None
    _queue: asyncio.Queue[Any]
    _changed: asyncio.Event
    _sendable: asyncio.Event
    _settling: asyncio.Task[None] | None
    _stop_sent: bool
    _fruitless: int
    _refusals: int
    _retry_at: float | None
    _answered: Connection | None
    _held_unknown: bool
    _sending: bytes | None
    _landed: bool

    def _signal(self) -> None:
        """The connection, or the session's fate, changed: whoever waits on `_changed` looks again."""
        self._changed.set()
        self._changed = asyncio.Event()

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
        if from_ms is not None and self._sending is not None and self.held.covers(from_ms, len(self._sending)):
            # the audio being sent when the connection dropped arrived (HTTP + SSE: its POST was closed by
            # this resume after the hub had taken it): counted as sent, not sent again (twice on the timeline,
            # and every later position 100 ms off the hub's)
            self._landed = True
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

    def _held_audio_unknown(self, err: HubRequestError) -> bool:
        """A hub from before `resume.held_audio` refuses the field (`invalid_command` naming it): True the
        first time, and the resumes from now on go without it (that hub tells of a takeover with
        `session.migrated`, and sending waits migration_wait_s for it after each resume)."""
        if self._held_unknown or err.code != "invalid_command" or "held_audio" not in err.message:
            return False
        log.info("session %s: the hub does not take resume.held_audio (%s); resuming without it",
                 self.session_id, err.message)
        self._held_unknown = True
        return True

    def _refused_again(self, err: HubRequestError) -> None:
        """The hub refused a resume. A code that may pass (`RETRYABLE`: e.g. `internal` while a node cannot
        reach Redis during a primary failover) is tried again, at most max_reconnects times in a row;
        any other ends the session's iteration (ResumeFailed), but for a hub that does not know
        `held_audio`: resumed again without it."""
        if self._held_audio_unknown(err):
            return
        self._refusals += 1
        self.refused.append(err)
        if isinstance(err, ResumeFailed) or err.code not in RETRYABLE or self._refusals > self.client.max_reconnects:
            raise ResumeFailed(f"session {self.session_id} cannot be resumed: {err}", err)
        if err.retry_after_ms is not None:
            self._retry_at = err.retry_after_ms / 1000

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
        # the hub closed the connection because another node took the session over: it has a live owner
        # now, so the first resume goes at once (the reconnect delay is for a hub that may be down)
        at_once = old is not None and old.moved and self._retry_at is None
        last: BaseException = lost
        while self._fruitless < self.client.max_reconnects:
            self._fruitless += 1
            wait, self._retry_at = (delay if self._retry_at is None else self._retry_at), None
            if at_once:
                wait, at_once = 0.0, False
            self.retry_waits.append(wait)
            await asyncio.sleep(wait)
            if wait:
                delay = min(delay * 2, 2.0)
            assert self.session_id is not None
            cmd = self.start_cmd.model_copy(update={"resume": ResumeSpec(
                session_id=self.session_id, last_seq=self.last_seq, held_audio=self.held.enabled and not self._held_unknown)})
            conn = self.client.connection()
            try:
                await conn.open(cmd)
            except HubRequestError as e:
                with contextlib.suppress(Exception):
                    await conn.close()
                if self._held_audio_unknown(e):
                    last = e
                    continue
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
                unanswered = self._held_unknown or (conn.answers_in_reply and conn.resumed_at_ms is None)
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
