"""The session glue every streaming transport shares (WebSocket, Socket.IO, gRPC; SSE for its event
stream): one client connection bound to at most one session at a time.

A transport maps its wire onto these calls and keeps only that mapping:
- `start(cmd)`: open a session (or resume one); refused while one runs on this connection;
- `audio(data)`, `flush()`, `stop()`, `keepalive()`: commands to the bound session; a `stop` once the
  session has ended (a fatal error, the idle timeout or a shutdown got there first) is answered by
  nothing: the session's end is what it asks for, and `session.ended` says why;
- `end_of_input()`: the client half-closed (gRPC): that is the end of its audio;
- `fail(err)`: an error to report. On a live session it goes through the session's channel (in seq
  order, and a fatal one ends the session); otherwise the transport gets the out-of-session `error`
  event (session_id "", seq 0) to send itself, except while the connection still owes its client the
  ended session's events: then it is held and goes out after `session.ended` (`pump`; gRPC asks
  `held_error`), so that nothing overtakes the session's own story (the fatal error that ended it);
- `internal(exc)`: an unexpected exception, logged once, as the `internal` error to report;
- `pump(send, after_seq)`: the session's events to `send`, in order, until `session.ended` (then the
  errors held meanwhile) or until `send` answers False (the client is gone). Backpressure is the transport's `send`: it returns once
  the event is on its way, and events wait in the session's bounded channel meanwhile;
- `detach()`: the connection is gone: a live session waits `resume_window_s` for its client.

Cluster (DESIGN §8): a resume of a session that another node owns binds the connection to a bridge
(`remote`): the same calls, with events from the session's log and commands to its owner. A client
whose session another node has taken over (`ChannelFenced`) is told to resume: `pump` returns False and
`moved` is set, and the transport closes the connection as "try again".
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING

from ..core.channel import ChannelFenced
from ..core.commands import StartSession
from ..core.errors import ClientError, ErrorCode, HubError, SessionStateError
from ..core.events import ErrorEvent, Event, SessionStarted
from ..engine.continued import ContinuedChannel
from ..engine.resume_point import resume_answer
from ..engine.service import SessionService
from ..engine.session import Session
from ..store.sessions.selectors import select_session
from .errors import error_event

if TYPE_CHECKING:
    from ..cluster.bridge import BridgedSession
    from ..cluster.node import ClusterNode

log = logging.getLogger(__name__)
MAX_HELD_ERRORS = 16  # errors held for after `session.ended` (see SessionBinding.fail)


def cluster_node(service: SessionService) -> ClusterNode | None:
    """This node in a cluster (DESIGN §8); None on a single node."""
    if service.cluster is None:
        return None
    from ..cluster.node import ClusterNode

    assert isinstance(service.cluster, ClusterNode)
    return service.cluster


async def remote_node_now(service: SessionService, session_id: str) -> ClusterNode | None:
    """The cluster node, when the session is not held here (another node may own it), once a takeover of
    the session by this node that is under way has settled (it may be held here then)."""
    node = cluster_node(service)
    if node is None or service.holds(session_id):
        return None
    if await node.claim_settled(session_id) and service.holds(session_id):
        return None
    return node


def held_epoch(service: SessionService, session_id: str) -> int:
    """The takeover epoch of a session held here: the seq of the `session.migrated` with which this node
    took it over (0: opened here, never taken over). Redis keeps the same as `sess:{id}`'s `epoch`."""
    s = service.plane(session_id)
    return s.channel.migrated.seq if s is not None and isinstance(s.channel, ContinuedChannel) else 0


def stale_epoch(session_id: str, epoch: int, current: int) -> HubError:
    """An HTTP + SSE request that carries the epoch of a start or resume reply from before the session's
    latest takeover (or after this node's copy of it): it was sent before its client knew the session had
    moved. It is refused, not placed: audio of it would land on the new owner's timeline ahead of the held
    audio the client sends again from `audio_from_ms` (twice, out of order). The client resumes."""
    return HubError(ErrorCode.node_lost, f"session '{session_id}' was taken over by another node (epoch "
                    f"{current}; this request carries epoch {epoch}); resume it (POST /v1/sessions with "
                    "`resume`) and send your held audio again from the reply's audio_from_ms, with its epoch")


def unknown_session(session_id: str, resume: bool) -> ClientError:
    """What a call on a session that does not exist is answered: `service.resume`'s words for a resume or
    an event stream (and for any session of another node: the cluster's bridge says the same), `service.get`'s
    for the rest."""
    if resume:
        return ClientError(ErrorCode.session_not_found, f"no session '{session_id}' to resume (expired or unknown)")
    return ClientError(ErrorCode.session_not_found, f"no session '{session_id}'")


async def check_owner(service: SessionService, session_id: str, api_key: str | None, *, resume: bool) -> None:
    """The one ownership rule of every wire (DESIGN §3.8): a session answers only credentials of the API key
    that started it (a token counts as its key). Any other key's call on it (resume, events, audio, flush,
    stop, keepalive, delete) gets exactly what an unknown session gets: the session's existence is not
    revealed to another key. `api_key` None: auth is off, every session is everyone's. Here or (cluster)
    on another node; an unknown session is left to the caller's own lookup."""
    if api_key is None:
        return
    held = select_session(service.state, session_id)
    if held is not None:
        if held.api_key != api_key:
            raise unknown_session(session_id, resume)
        return
    if (node := cluster_node(service)) is not None:
        rec = await node.find(session_id)
        if rec is not None and rec.api_key != api_key:
            raise unknown_session(session_id, True)


async def open_session(service: SessionService, cmd: StartSession, transport: str, api_key: str | None) -> Session:
    """`service.start_session`, with the API key's session quota held across the cluster's nodes
    (DESIGN §8 "Admission") when there is a cluster: the session's id is reserved in the quota first."""
    node = cluster_node(service)
    if node is None or cmd.resume is not None or api_key is None:
        return service.start_session(cmd, transport, api_key)
    limit = service.admission.key_limits.get(api_key, service.config.limits.max_sessions_per_key)
    sid = await node.reserve(api_key, limit)
    try:
        return service.start_session(cmd, transport, api_key, session_id=sid)
    except BaseException:
        if sid is not None:
            node.removed(sid)  # never started: its slot is free again
        raise


async def resume_point(service: SessionService, session_id: str) -> SessionStarted | None:
    """The answer to a resume of a session held here: in a cluster once this node's inbox has applied
    what was written to it before (a relay that died had put its client's audio there)."""
    if (node := cluster_node(service)) is not None:
        return await node.resume_point(session_id)
    return resume_answer(service, session_id)


class _After:
    """`first`, then the events of `rest` (closed with it)."""

    def __init__(self, first: Event, rest: AsyncIterator[Event]) -> None:
        self.first: Event | None = first
        self.rest = rest

    def __aiter__(self) -> _After:
        return self

    async def __anext__(self) -> Event:
        if self.first is not None:
            ev, self.first = self.first, None
            return ev
        return await self.rest.__anext__()

    async def aclose(self) -> None:
        aclose = getattr(self.rest, "aclose", None)
        if aclose is not None:
            await aclose()


class SessionBinding:
    def __init__(self, service: SessionService, transport: str, api_key: str | None, verb: str = "send") -> None:
        self.service = service
        self.transport = transport
        self.api_key = api_key
        self.verb = verb  # how the transport's docs say a command is made: "send" / "emit"
        self.session: Session | None = None
        self.remote: BridgedSession | None = None  # a session of another node (cluster)
        self.attachment = 0  # which attachment of the session this connection is (resume makes new ones)
        self.moved = False   # the session continues on another node: the client should resume
        self.told_closed = False  # this connection was told its audio is refused (stopping or ended)
        self.end_owed = False  # the bound session's events up to `session.ended` are still to go out here
        self.held: list[ErrorEvent] = []  # errors for after `session.ended` (see `fail`)
        self.answer: SessionStarted | None = None  # a resume's answer: the first event `events` gives
        self.resumed = False  # this connection resumed the session: its stop may repeat one the hub has

    @classmethod
    async def of(cls, service: SessionService, transport: str, session_id: str,
                 epoch: int | None = None) -> SessionBinding:
        """A binding to an existing session (SSE: each request names its session in the path), here or
        (cluster) on another node, for commands only. `epoch`: the takeover epoch the request carries
        (HTTP + SSE `?epoch=`); one that is not the session's now is refused (`stale_epoch`)."""
        bind = cls(service, transport, None)
        if (node := await remote_node_now(service, session_id)) is not None:
            bind.remote = await node.bridge(session_id, None, attach=False)
            if epoch is not None and epoch != bind.remote.epoch:
                bind.remote.detach()
                raise stale_epoch(session_id, epoch, bind.remote.epoch)
            return bind
        bind.session = service.get(session_id)
        bind.attachment = service.attachment(session_id)
        if epoch is not None and epoch != (current := held_epoch(service, session_id)):
            if cluster_node(service) is None:  # a single node takes no session over: its epoch is always 0
                raise SessionStateError(ErrorCode.invalid_command, f"epoch {epoch} is not session "
                                        f"'{session_id}''s ({current}): use the epoch its start or resume reply gave")
            raise stale_epoch(session_id, epoch, current)
        if (node := cluster_node(service)) is not None:
            # the balancer spreads a client's POSTs over the nodes: one another node answered before this one
            # (in the session's inbox) goes first, not after it
            await node.caught_up(session_id)
        return bind

    @property
    def live(self) -> bool:
        """A session is bound and has not ended (the store's view; a bridge's own for another node's)."""
        if self.remote is not None:
            return self.remote.live
        return self.session is not None and self.service.is_live(self.session.id)

    @property
    def session_id(self) -> str:
        if self.remote is not None:
            return self.remote.id
        return self.session.id if self.session is not None else ""

    async def settle(self) -> None:
        """The commands given are on their way (a bridge's are in Redis); for one-request bindings."""
        if self.remote is not None:
            await self.remote.flushed()

    def is_open(self) -> bool:
        """The bound session takes audio and commands now."""
        if self.remote is not None:
            return self.remote.live
        return self.session is not None and self.service.is_open(self.session.id)

    # -- commands -------------------------------------------------------------------------------
    async def start(self, cmd: StartSession) -> tuple[str, int]:
        """The session's id and the seq its events start after (a resume replays from `last_seq`)."""
        if self.live:
            raise ClientError(ErrorCode.invalid_command, "a session is already running on this connection")
        after = cmd.resume.last_seq if cmd.resume else 0
        if cmd.resume is not None:
            await check_owner(self.service, cmd.resume.session_id, self.api_key, resume=True)
            self.resumed = True
        taken = False  # this resume took the session over here (its owner's lease was gone)
        if cmd.resume is not None and (node := await remote_node_now(self.service, cmd.resume.session_id)) is not None:
            if await self._bridge(node, cmd):
                self._owe_end()
                return self.session_id, after
            taken = True
        session = await open_session(self.service, cmd, self.transport, self.api_key)
        self.session, self.remote = session, None
        self.attachment = self.service.attachment(session.id)
        if cmd.resume is not None and cmd.resume.held_audio:
            # taken over just now: the claim emptied its inbox, the timeline is as it stands here
            self.answer = resume_answer(self.service, session.id) if taken else await resume_point(self.service, session.id)
        self._owe_end()
        return session.id, after

    def _owe_end(self) -> None:
        """A session is bound: its events, to `session.ended`, are owed to this connection."""
        self.end_owed, self.held = True, []

    async def _bridge(self, node: ClusterNode, cmd: StartSession) -> bool:
        """Bind to a bridge to the session's owner (True); False when this node has taken the session over
        for this resume (its owner's lease was gone): it is served from the local session, not through a
        bridge to this node's own inbox."""
        from ..core.validation import validate_audio_spec, validate_idle_timeout

        assert cmd.resume is not None
        validate_audio_spec(cmd.audio, self.service.config.limits)  # as a local resume checks them
        validate_idle_timeout(cmd.idle_timeout_s, self.service.config.limits)
        remote = await node.resume(cmd.resume.session_id, cmd.resume.last_seq)
        if remote is None:
            return False
        self.remote, self.session = remote, None
        self.answer = remote.resumed if cmd.resume.held_audio else None
        return True

    def _bound(self, what: str) -> str:
        if self.remote is not None:
            return self.remote.id
        if self.session is None:
            raise ClientError(ErrorCode.invalid_command, f"{what} before 'start'; {self.verb} start first")
        return self.session.id

    def audio(self, data: bytes) -> None:
        """Audio for the bound session. Audio still in flight after a stop or a shutdown is refused once per
        connection (the error says why); what follows it is dropped quietly, `session.ended` ends the story,
        rather than one error per frame."""
        sid = self._bound("audio arrived")
        if self.remote is not None:
            self.remote.audio(data)
            return
        try:
            self.service.push_audio(sid, data)
        except SessionStateError:
            if not self.service.is_closing(sid):
                raise  # not started yet: every frame is refused
            if self.told_closed:
                return
            self.told_closed = True
            raise

    def _command(self, op: str, again: bool = False) -> None:
        sid = self._bound(f"'{op}'")
        if self.remote is not None:
            self.remote.command(op, again=again)
        elif op == "flush":
            self.service.flush(sid)
        elif op == "stop":
            self.service.stop(sid)
        else:
            self.service.keepalive(sid)

    def flush(self) -> None:
        self._command("flush")

    def stop(self, again: bool = False) -> None:
        """Idempotent once the session has ended: nothing is left to stop (`session.ended` answers it).
        While it is stopping, a second stop is refused (in seq order, through the session's channel),
        except one that may repeat the stop being carried out (`again`, or any stop on a connection that
        resumed the session): a client whose connection, or relay node, died after its stop cannot know
        whether the stop arrived, and sends it again after the resume. That one is taken quietly (on the
        session's node, in order with the first, when bridged)."""
        self._bound("'stop'")
        if not self.live:
            return
        again = again or self.resumed
        if again and self.remote is None and self.service.is_closing(self.session_id):
            return
        self._command("stop", again)

    def keepalive(self) -> None:
        self._command("keepalive")

    def end_of_input(self) -> ErrorEvent | None:
        """The client closed its side: stop the session if it still takes commands."""
        if self.is_open():
            try:
                self.stop()
            except HubError as e:
                return self.fail(e)
        return None

    # -- errors -----------------------------------------------------------------------------------
    def fail(self, err: HubError) -> ErrorEvent | None:
        """Report `err`: through the live session's channel (None), or as an event to send now; or, when
        the session has ended but its last events have not gone out here yet, held for after them (None):
        sent now it would overtake them (and the fatal error that ended the session)."""
        if self.live:
            if self.remote is not None:
                self.remote.fail(err)
            else:
                self.service.error(self.session_id, err)
            return None
        if self.end_owed:
            if len(self.held) < MAX_HELD_ERRORS:  # a client that floods commands meanwhile is told a few times
                self.held.append(error_event(err))
            return None
        return error_event(err)

    def held_error(self) -> ErrorEvent | None:
        """After `session.ended` went out: the next error held meanwhile. None: none is left, and from
        now on errors go out at once."""
        if self.held:
            return self.held.pop(0)
        self.end_owed = False
        return None

    def internal(self, exc: Exception, what: str) -> HubError:
        log.exception("%s %s failed", self.transport, what)
        return HubError(ErrorCode.internal, f"internal error: {type(exc).__name__}")

    # -- events -----------------------------------------------------------------------------------
    def events(self, after_seq: int) -> AsyncIterator[Event]:
        """The bound session's events after `after_seq`; after a resume, its answer first (seq 0:
        `session.started {resumed, audio_from_ms}`, engine/resume_point.py)."""
        sid = self._bound("events")
        sub = self.remote.events(after_seq) if self.remote is not None else self.service.events(sid, after_seq)
        answer, self.answer = self.answer, None
        return sub if answer is None else _After(answer, sub)

    async def pump(self, send: Callable[[Event], Awaitable[bool | None]], after_seq: int) -> bool:
        """Send the session's events; True when `session.ended` went out, False when `send` gave up or
        the session moved to another node (`moved`: the client should resume)."""
        sub = self.events(after_seq)
        try:
            async for ev in sub:
                if await send(ev) is False:
                    return False
            while (err := self.held_error()) is not None:
                if await send(err) is False:
                    return False
            return True
        except ChannelFenced as e:
            log.info("%s: %s", self.transport, e)
            self.moved = True
            return False
        finally:
            aclose = getattr(sub, "aclose", None)
            if aclose is not None:
                await aclose()

    def detach(self) -> None:
        """This connection is gone (a resume elsewhere may have taken the session over already)."""
        if self.remote is not None:
            self.remote.detach()
        elif self.live:
            self.service.detach(self.session_id, self.attachment)
