"""HTTP + Server-Sent Events transport (DESIGN §3.4).

POST /v1/sessions (StartSession JSON) opens a session; its events stream from
GET /v1/sessions/{id}/events (`id: <seq>`, `event: <type>`, `data: <json>`, keep-alive comments,
Last-Event-ID replay); audio, flush, stop and keepalive are POSTs; DELETE aborts. Errors are HTTP status +
`{"error": {"code", "message"}}`. A reader that goes away detaches the session (only when it was the
last reader), so a reconnect within the resume window replays what it missed. In a cluster the POST answers
once the new session is in Redis (any node behind the balancer finds it; DESIGN §8), or after the Redis
timeout when Redis does not answer (the session is then local-only).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from fastapi import APIRouter, Header, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.requests import ClientDisconnect

from ..core.commands import StartSession, parse_json
from ..core.errors import ErrorCode, HubError, SessionStateError
from ..engine.resume_point import resume_answer
from ..engine.service import SessionService

if TYPE_CHECKING:
    from ..cluster.bridge import BridgedSession
from .binding import (
    SessionBinding,
    check_owner,
    cluster_node,
    held_epoch,
    open_session,
    remote_node_now,
    resume_point,
)
from .errors import SESSION_COMMAND_ERRORS, error_response, error_responses
from .http_guard import allowed_methods, is_head
from .openapi import inline_schema
from .sse_stream import EventStream, StreamProgress

log = logging.getLogger(__name__)
router = APIRouter(tags=["sessions (HTTP + SSE)"])

class SessionCreated(BaseModel):
    session_id: str
    events_url: str
    audio_url: str
    # a resume with `held_audio`: how much audio the session has received (send held audio again from here)
    audio_from_ms: int | None = None
    # cluster: the session's takeover epoch (absent: 0, never taken over); sent back as `?epoch=` on its
    # audio and command POSTs, a request from before a later takeover is refused `node_lost`
    epoch: int | None = None


def _service(request: Request) -> SessionService:
    return request.app.state.hub.service  # type: ignore[no-any-return]


def _progress(request: Request) -> StreamProgress:
    """The app's record of how far its event streams have sent (made with the first stream)."""
    state = request.app.state
    progress = getattr(state, "sse_progress", None)
    if progress is None:
        progress = state.sse_progress = StreamProgress()
    return progress  # type: ignore[no-any-return]


def _api_key(request: Request) -> str | None:
    return request.scope.get("asrhub.api_key")


def _internal(e: Exception, what: str) -> Response:
    if isinstance(e, ClientDisconnect):  # gone mid-body: nobody to answer, nothing went wrong here
        log.info("%s: the client went away before its request body was complete", what)
        return Response(status_code=400)
    log.exception("%s failed", what)
    return error_response(HubError(ErrorCode.internal, f"internal error: {type(e).__name__}"))


async def _read_start(request: Request) -> StartSession:
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype == "application/octet-stream" or ctype.startswith("audio/"):
        raise HubError(ErrorCode.invalid_command, "POST /v1/sessions takes a StartSession JSON body; send audio "
                       "to the session's audio_url after it has started")
    # as on every other wire: never parse a 10 MB "command"; no body: the defaults
    return parse_json(await request.body(), StartSession.model_validate, what="StartSession body",
                      not_object="start body must be a JSON object", empty_is_object=True)


@router.post("/v1/sessions", status_code=201, response_model=SessionCreated, responses={
    200: {"model": SessionCreated, "description": "resumed (`resume`)"}, **error_responses(400, 404, 409, 413, 415, 503)},
             summary="Open a session (or resume one with `resume`)",
             openapi_extra={"requestBody": {"required": False, "content": {
                 "application/json": {"schema": inline_schema(StartSession)}}}})
async def create_session(request: Request) -> Response:
    service = _service(request)
    try:
        cmd = await _read_start(request)
        if cmd.resume is not None:  # only the session's own key resumes it (as on every wire)
            await check_owner(service, cmd.resume.session_id, _api_key(request), resume=True)
        audio_from_ms: int | None = None
        remote = await remote_node_now(service, cmd.resume.session_id) if cmd.resume is not None else None
        # another node's session: checked here; its event stream (Last-Event-ID) attaches it. Its owner's
        # lease gone: taken over here at once (no bridge), and answered as a session of this node's
        bridge = await remote.resume(cmd.resume.session_id, cmd.resume.last_seq, attach=False) \
            if remote is not None and cmd.resume is not None else None
        taken = remote is not None and bridge is None
        if remote is not None and bridge is not None:
            session_id = bridge.id
            if cmd.resume is not None and cmd.resume.held_audio:  # (an owner that does not answer: taken over
                audio_from_ms = await remote.held_audio_answer(bridge)  # here once its lease is gone)
            # the epoch of the node that answered audio_from_ms: its owner's, or this node's after its takeover
            epoch = held_epoch(service, session_id) if service.holds(session_id) else bridge.epoch
        else:
            session_id = (await open_session(service, cmd, "sse", _api_key(request))).id
            if cmd.resume is not None and cmd.resume.held_audio:
                # taken over just now: the claim emptied its inbox, nothing to wait for
                answer = resume_answer(service, session_id) if taken else await resume_point(service, session_id)
                audio_from_ms = answer.audio_from_ms if answer is not None else None
            epoch = held_epoch(service, session_id)
            if (node := cluster_node(service)) is not None and not taken:
                # behind a balancer the client's next request may reach another node: it must find the session
                await node.in_cluster(session_id)
    except HubError as e:
        return error_response(e)
    except Exception as e:
        return _internal(e, "POST /v1/sessions")
    body = SessionCreated(session_id=session_id,
                          events_url=str(request.url_for("sse_events", session_id=session_id)),
                          audio_url=str(request.url_for("sse_audio", session_id=session_id)),
                          audio_from_ms=audio_from_ms, epoch=epoch or None)
    return JSONResponse(body.model_dump(exclude_none=True), status_code=200 if cmd.resume else 201)


SEQ_PATTERN = r"^[0-9]*$"  # an event seq; empty: from the start
#: One message of the event stream (keep-alive comments are not messages)
SSE_EVENT_SCHEMA = {"type": "object", "required": ["id", "event", "data"], "properties": {
    "id": {"type": "string", "pattern": "^[0-9]+$", "description": "the event's seq"},
    "event": {"type": "string", "description": "the event's type (PROTOCOL.md)"},
    "data": {"type": "string", "contentMediaType": "application/json", "description": "the event as JSON"}}}


def _last_event_id(header: str | None, query: str | None) -> int:
    raw = header if header not in (None, "") else query  # the header (EventSource's own reconnect) wins
    if raw in (None, ""):
        return 0
    try:
        value = int(str(raw).strip())
    except ValueError:
        raise HubError(ErrorCode.invalid_command, f"Last-Event-ID must be an event seq, got {raw!r}") from None
    if value < 0:
        raise HubError(ErrorCode.invalid_command, "Last-Event-ID must not be negative")
    return value


@router.get("/v1/sessions/{session_id}/events", name="sse_events", status_code=200, response_class=EventStream,
            responses={
    200: {"content": {"text/event-stream": {"schema": SSE_EVENT_SCHEMA}},
          "description": "`id: <seq>`, `event: <type>`, `data: <event JSON>`"},
    204: {"description": "the session has ended and every event was delivered"},
    **error_responses(400, 404, 409, 503)})
async def session_events(request: Request, session_id: str,
                         # typed `str` (not Optional): an absent header is absent, there is no null to send
                         last_event_id_header: str = Header(None, alias="Last-Event-ID", pattern=SEQ_PATTERN,
                                                            description="the last event seq the client has"),
                         last_event_id: str = Query(None, pattern=SEQ_PATTERN,
                                                    description="same as the Last-Event-ID header (for a new "
                                                    "EventSource, which cannot set headers)")
                         ) -> Response:
    service = _service(request)
    try:
        after = _last_event_id(last_event_id_header, last_event_id)
        node = await remote_node_now(service, session_id)
        if node is not None and is_head(request.scope):  # (a probe: no reader, nothing taken over)
            return _remote_events(await node.bridge(session_id, after, attach=False), after)
        # another node's session: bridged to its owner; its owner's lease gone, taken over here (None) and
        # served from the local session
        bridge = await node.resume(session_id, after) if node is not None else None
        if bridge is not None:
            return _remote_events(bridge, after)
        if is_head(request.scope):  # what GET would answer, without (re)attaching: a probe is no reader
            service.check_not_deleted(session_id)
            session = service.get(session_id)
            if after > session.channel.last_seq or not session.channel.can_replay(after):
                raise SessionStateError(ErrorCode.invalid_command, f"cannot resume from seq {after}: the hub holds events "
                               f"up to {session.channel.last_seq}")
        else:
            session = service.resume(session_id, after)  # (re)attaches; checks the events are still held
    except HubError as e:
        return error_response(e)
    if not service.is_live(session.id) and after >= session.channel.last_seq:
        return Response(status_code=204)  # tells EventSource not to reconnect
    return EventStream.local(service, session, after, progress=_progress(request))


def _remote_events(bridge: BridgedSession, after: int) -> Response:
    """Cluster: a session another node owns, read from its log through a bridge (DESIGN §8)."""
    if bridge.ended and after >= bridge.last_seq:
        return Response(status_code=204)
    return EventStream(bridge.id, lambda: bridge.events(after), bridge.detach)


EPOCH = Query(None, ge=0, description="the `epoch` of the session's last start or resume reply (absent there: 0); "
              "cluster: a request from before a later takeover of the session is refused 503 `node_lost` (resume, "
              "and send the held audio again from `audio_from_ms`); a single node: another epoch than 0 is 409. "
              "Absent: not checked")


@router.post("/v1/sessions/{session_id}/audio", name="sse_audio", status_code=202, response_class=Response, responses={
    202: {"description": "accepted"}, **error_responses(400, 404, 409, 413, 503)}, openapi_extra={"requestBody": {"required": True, "content": {
        "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}}})
async def session_audio(request: Request, session_id: str, epoch: int | None = EPOCH) -> Response:
    service = _service(request)
    bind: SessionBinding | None = None
    try:
        service.check_not_deleted(session_id)
        bind = await SessionBinding.of(service, "sse", session_id, epoch)
        channel = service.get(session_id).channel if bind.remote is None else None
        limit = service.config.limits.max_message_bytes
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > limit:
            raise HubError(ErrorCode.payload_too_large, f"audio message of {declared} bytes exceeds the limit of {limit}")
        before = channel.last_seq if channel is not None else 0
        bind.audio(await request.body())
        await bind.settle()
    except HubError as e:
        if e.fatal and bind is not None:  # e.g. an undecodable stream: ends the session, as on the other wires
            bind.fail(e)
            await bind.settle()
        return error_response(e)
    except Exception as e:
        return _internal(e, "POST audio")
    if channel is not None and channel.last_seq != before:
        await _stream_first(request, session_id)
    return Response(status_code=202)


async def _stream_first(request: Request, session_id: str) -> None:
    """This request may have put events (speech edges) in the session's channel: let an open event stream
    send them before this request finishes its own response (and its access log line). It waits on the
    stream's progress (bounded by SENT_WAIT_S); with no stream open, or a session of another node, at once."""
    session = _service(request).plane(session_id)
    if session is not None:
        await _progress(request).until_sent(session_id, session.channel.visible_seq)


@router.post("/v1/sessions/{session_id}/flush", status_code=202, response_class=Response,
             responses={202: {"description": "accepted"}, **SESSION_COMMAND_ERRORS, **error_responses(400)})
async def session_flush(request: Request, session_id: str, epoch: int | None = EPOCH) -> Response:
    response = await _command(request, session_id, "flush", epoch=epoch)
    await _stream_first(request, session_id)
    return response


@router.post("/v1/sessions/{session_id}/stop", status_code=202, response_class=Response,
             responses={202: {"description": "accepted"}, **error_responses(400, 404, 409, 503)})  # (400: `again`)
async def session_stop(request: Request, session_id: str, again: bool = Query(
        False, description="this stop may repeat one the hub has (a client sending its stop again after a "
                           "resume): while the session is stopping it is taken quietly, not refused"),
                       epoch: int | None = EPOCH) -> Response:
    response = await _command(request, session_id, "stop", again=again, epoch=epoch)
    await _stream_first(request, session_id)
    return response


@router.post("/v1/sessions/{session_id}/keepalive", status_code=202, response_class=Response,
             responses={202: {"description": "accepted"}, **SESSION_COMMAND_ERRORS, **error_responses(400)},
             summary="No audio for a while: reset the session's idle timer")
async def session_keepalive(request: Request, session_id: str, epoch: int | None = EPOCH) -> Response:
    return await _command(request, session_id, "keepalive", epoch=epoch)


@router.post("/v1/sessions/{session_id}/{command}", status_code=202, include_in_schema=False)
async def session_unknown(request: Request, session_id: str, command: str) -> Response:
    allowed = allowed_methods(request.scope, documented_only=True)
    if allowed:  # a documented route by another method (GET .../events): not a command
        return error_response(HubError(ErrorCode.method_not_allowed, f"POST is not allowed on {request.url.path}"),
                              headers={"Allow": ", ".join(allowed)})
    return await _command(request, session_id, command)


async def _command(request: Request, session_id: str, command: str, *, again: bool = False,
                   epoch: int | None = None) -> Response:
    try:
        _service(request).check_not_deleted(session_id)
        bind = await SessionBinding.of(_service(request), "sse", session_id, epoch)
        if command == "flush":
            bind.flush()
        elif command == "stop":
            bind.stop(again=again)
        elif command == "keepalive":
            bind.keepalive()
        elif command == "start":
            raise SessionStateError(ErrorCode.invalid_command, f"session '{session_id}' has already started"
                           + (" and ended" if not bind.live else "") + "; POST /v1/sessions opens another")
        else:
            raise HubError(ErrorCode.invalid_command, f"unknown command {command!r} (expected audio, flush, stop, keepalive)")
        await bind.settle()
    except HubError as e:
        return error_response(e)
    except Exception as e:
        return _internal(e, f"POST {command}")
    return Response(status_code=202)


@router.delete("/v1/sessions/{session_id}", status_code=204, response_class=Response, responses=error_responses(404, 503),
               summary="Abort the session now (no finalisation)")
async def delete_session(request: Request, session_id: str) -> Response:
    try:
        service = _service(request)
        if await remote_node_now(service, session_id) is not None:
            bind = await SessionBinding.of(service, "sse", session_id)
            assert bind.remote is not None
            bind.remote.command("abort")
            await bind.settle()
        else:
            service.check_not_deleted(session_id)  # deleted once: a second DELETE finds nothing
            service.abort(session_id)
    except HubError as e:
        return error_response(e)
    return Response(status_code=204)
