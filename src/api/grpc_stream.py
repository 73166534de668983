"""One gRPC StreamingRecognize call (DESIGN §3.6) over the session binding: requests in, session events
out. The first request is `start`, then `audio`, `flush`, `stop`, `keepalive`; errors outside a session
are `error` events with session_id "" and seq 0; closing the request stream without `stop` counts as
`stop`, and a dropped call detaches the session."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

import grpc

from ..core.channel import ChannelFenced
from ..core.commands import parse_start
from ..core.errors import ErrorCode, HubError
from ..hub import Hub
from .binding import SessionBinding
from .grpc_codec import BadRequest, event_to_proto, start_to_dict

log = logging.getLogger(__name__)

_END = object()


class _Attach:
    """Queued by `start`: from here on the response stream carries this session's events."""

    def __init__(self, session_id: str, after_seq: int) -> None:
        self.session_id = session_id
        self.after_seq = after_seq


class GrpcStream:
    """One StreamingRecognize call: requests -> session binding; session events -> responses.

    The response generator takes each event straight from the session's channel and hands it to gRPC
    (no task or queue in between: a hop there let other ready work, e.g. the start of a final's decode,
    run before speech.ended was written). `out` only carries what comes before the session's events
    (errors outside a session) and the end of the call."""

    MAX_QUEUED_ERRORS = 256
    DROP_GRACE_S = 1.0  # how long a request stream that ended without stop waits to tell a drop from a half-close
    SETTLE_S = 0.2  # ... and then once more, for callbacks that a held-up loop has not run yet

    def __init__(self, hub: Hub, pb: Any, api_key: str | None) -> None:
        self.bind = SessionBinding(hub.service, "grpc", api_key)
        self.pb = pb
        self.out: asyncio.Queue[Any] = asyncio.Queue()
        self.streaming: asyncio.Task[Any] | None = None  # the response task, while it streams a session
        self.context: grpc.aio.ServicerContext | None = None
        self.detached = False

    def report(self, err: HubError) -> None:
        direct = self.bind.fail(err)
        if direct is not None and self.out.qsize() < self.MAX_QUEUED_ERRORS:
            self.out.put_nowait(direct)

    async def handle(self, req: Any) -> None:
        if isinstance(req, BadRequest):
            raise HubError(req.code, req.message)
        kind = req.WhichOneof("request")
        if kind == "start":
            session_id, after = await self.bind.start(parse_start(start_to_dict(req.start)))
            self.out.put_nowait(_Attach(session_id, after))
        elif kind == "audio":
            self.bind.audio(req.audio)
        elif kind == "flush":
            self.bind.flush()
        elif kind == "stop":
            self.bind.stop()
        elif kind == "keepalive":
            self.bind.keepalive()
        else:
            raise HubError(ErrorCode.invalid_command, "request holds no command (expected start, audio, flush, stop, "
                           "keepalive)")

    async def read(self, requests: AsyncIterator[Any]) -> None:
        try:
            async for req in requests:
                try:
                    await self.handle(req)
                except HubError as e:
                    self.report(e)
                except Exception as e:
                    self.report(self.bind.internal(e, "request"))
        except Exception:  # the request stream broke: same as a dropped connection
            log.warning("gRPC request stream failed", exc_info=True)
            self.out.put_nowait(_END)
            if self.streaming is not None:
                self.streaming.cancel()  # it waits on the session's channel, not on `out`
            return
        if self.bind.is_open() and await self._dropped():
            # grpc ends the request stream of a dropped connection as if the client had half-closed; the
            # call's cancellation follows: detach (resumable), do not stop
            self.out.put_nowait(_END)
            if self.streaming is not None:
                self.streaming.cancel()
            self.detach()  # now: the response generator may have been dropped unclosed (see _dropped)
            return
        # the client half-closed: that is the end of its audio
        if not self.bind.session_id:
            self.out.put_nowait(_END)
        elif (direct := self.bind.end_of_input()) is not None:
            self.out.put_nowait(direct)

    async def _dropped(self) -> bool:
        """After the request stream ended: True when the call turns out over (the connection dropped)
        within DROP_GRACE_S, False for a genuine half-close (the call stays open for the events).

        grpc aio ends the request stream of a cancelled call as it ends a half-closed one, and says
        nothing of the cancellation on the context (`context.cancelled()` stays False: only a code the
        handler sets makes it True). The drop shows as the end of the call instead: grpc cancels the
        handler's task a few callbacks later (which cancels this wait via run()), or the handler's task
        has already finished because writing an event to the gone client failed (grpc then drops the
        response generator without closing it, and only the context's done callback tells)."""
        context = self.context
        if context is None:
            return False
        over = asyncio.Event()
        context.add_done_callback(lambda _: over.set())
        with contextlib.suppress(TimeoutError):  # (a drop usually cancels this wait itself, via run())
            await asyncio.wait_for(over.wait(), self.DROP_GRACE_S)
        if not over.is_set():
            # the loop may have been held up past the grace (a busy machine): a cancellation that grpc
            # received meanwhile is still a few callbacks away. Let them run before calling it a half-close
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(over.wait(), self.SETTLE_S)
        if over.is_set():
            return True
        log.info("gRPC call for session %s half-closed without stop: taken as the end of its audio",
                 self.bind.session_id)
        return False

    async def run(self, requests: AsyncIterator[Any]) -> AsyncIterator[Any]:
        reader = asyncio.create_task(self.read(requests))
        try:
            while True:
                item = await self.out.get()
                if item is _END:
                    return
                if not isinstance(item, _Attach):
                    yield event_to_proto(self.pb, item)
                    continue
                sub = self.bind.events(item.after_seq)
                self.streaming = asyncio.current_task()
                try:
                    async for ev in sub:
                        yield event_to_proto(self.pb, ev)
                except ChannelFenced as e:  # another node took the session over: the client resumes
                    raise HubError(ErrorCode.node_lost, f"{e}; resume the session") from None
                finally:
                    self.streaming = None
                    await aclose(sub)
                # session.ended went out: the errors held for after it, whatever was queued meanwhile, then
                # the end of the call
                while (held := self.bind.held_error()) is not None:
                    yield event_to_proto(self.pb, held)
                while not self.out.empty():
                    rest = self.out.get_nowait()
                    if rest is _END or isinstance(rest, _Attach):
                        return
                    yield event_to_proto(self.pb, rest)
                return
        finally:
            if not reader.done():
                reader.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await reader
            self.detach()

    def detach(self) -> None:
        """The call is gone: the session waits for a resume (once per call)."""
        if not self.detached:
            self.detached = True
            self.bind.detach()


async def aclose(it: AsyncIterator[Any]) -> None:
    aclose = getattr(it, "aclose", None)
    if aclose is not None:
        await aclose()
