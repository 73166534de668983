"""The session glue every streaming transport shares (WebSocket, Socket.IO, gRPC; SSE for its event
stream): one client connection bound to at most one session at a time.

A transport maps its wire onto these calls and keeps only that mapping:
- `start(cmd)`: open a session (or resume one); refused while one runs on this connection;
- `audio(data)`, `flush()`, `stop()`, `keepalive()`: commands to the bound session;
- `end_of_input()`: the client half-closed (gRPC): that is the end of its audio;
- `fail(err)`: an error to report. On a live session it goes through the session's channel (in seq
  order, and a fatal one ends the session); otherwise the transport gets the out-of-session `error`
  event (session_id "", seq 0) to send itself;
- `internal(exc)`: an unexpected exception, logged once, as the `internal` error to report;
- `pump(send, after_seq)`: the session's events to `send`, in order, until `session.ended` or until
  `send` answers False (the client is gone). Backpressure is the transport's `send`: it returns once
  the event is on its way, and events wait in the session's bounded channel meanwhile;
- `detach()`: the connection is gone: a live session waits `resume_window_s` for its client.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable

from ..core.commands import StartSession
from ..core.errors import ClientError, ErrorCode, HubError
from ..core.events import ErrorEvent, Event
from ..core.service import SessionService
from ..core.session import Session
from .errors import error_event

log = logging.getLogger(__name__)


class SessionBinding:
    def __init__(self, service: SessionService, transport: str, api_key: str | None, verb: str = "send") -> None:
        self.service = service
        self.transport = transport
        self.api_key = api_key
        self.verb = verb  # how the transport's docs say a command is made: "send" / "emit"
        self.session: Session | None = None
        self.attachment = 0  # which attachment of the session this connection is (resume makes new ones)

    @classmethod
    def of(cls, service: SessionService, transport: str, session_id: str) -> SessionBinding:
        """A binding to an existing session (SSE: each request names its session in the path)."""
        bind = cls(service, transport, None)
        bind.session = service.get(session_id)
        bind.attachment = service.attachment(session_id)
        return bind

    @property
    def live(self) -> bool:
        """A session is bound and has not ended (the store's view)."""
        return self.session is not None and self.service.is_live(self.session.id)

    @property
    def session_id(self) -> str:
        return self.session.id if self.session is not None else ""

    # -- commands -------------------------------------------------------------------------------
    def start(self, cmd: StartSession) -> tuple[Session, int]:
        """The session and the seq its events start after (a resume replays from `last_seq`)."""
        if self.live:
            raise ClientError(ErrorCode.invalid_command, "a session is already running on this connection")
        session = self.service.start_session(cmd, self.transport, self.api_key)
        self.session = session
        self.attachment = self.service.attachment(session.id)
        return session, cmd.resume.last_seq if cmd.resume else 0

    def _bound(self, what: str) -> Session:
        if self.session is None:
            raise ClientError(ErrorCode.invalid_command, f"{what} before 'start'; {self.verb} start first")
        return self.session

    def audio(self, data: bytes) -> None:
        self.service.push_audio(self._bound("audio arrived").id, data)

    def flush(self) -> None:
        self.service.flush(self._bound("'flush'").id)

    def stop(self) -> None:
        self.service.stop(self._bound("'stop'").id)

    def keepalive(self) -> None:
        self.service.keepalive(self._bound("'keepalive'").id)

    def end_of_input(self) -> ErrorEvent | None:
        """The client closed its side: stop the session if it still takes commands."""
        if self.session is not None and self.service.is_open(self.session.id):
            try:
                self.service.stop(self.session.id)
            except HubError as e:
                return self.fail(e)
        return None

    # -- errors -----------------------------------------------------------------------------------
    def fail(self, err: HubError) -> ErrorEvent | None:
        """Report `err`: through the live session's channel (None), or as an event to send now."""
        if self.live:
            self.service.error(self.session_id, err)
            return None
        return error_event(err)

    def internal(self, exc: Exception, what: str) -> HubError:
        log.exception("%s %s failed", self.transport, what)
        return HubError(ErrorCode.internal, f"internal error: {type(exc).__name__}")

    # -- events -----------------------------------------------------------------------------------
    def events(self, after_seq: int) -> AsyncIterator[Event]:
        return self.service.events(self._bound("events").id, after_seq)

    async def pump(self, send: Callable[[Event], Awaitable[bool | None]], after_seq: int) -> bool:
        """Send the session's events; True when `session.ended` went out, False when `send` gave up."""
        sub = self.events(after_seq)
        try:
            async for ev in sub:
                if await send(ev) is False:
                    return False
            return True
        finally:
            aclose = getattr(sub, "aclose", None)
            if aclose is not None:
                await aclose()

    def detach(self) -> None:
        """This connection is gone (a resume elsewhere may have taken the session over already)."""
        if self.live:
            self.service.detach(self.session_id, self.attachment)
