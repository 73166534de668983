"""What a transport supplies to `asrhub.client`: one live connection carrying one session (client/base.py
puts resume on top of it)."""

from __future__ import annotations

import abc
from collections.abc import AsyncIterator
from typing import Any

from ..core.commands import StartSession
from ..core.events import Event


def start_fields(start: StartSession) -> dict[str, Any]:
    """`start` as the JSON wires send it: without the fields left out (None), and without
    `resume.held_audio` when false (its default: a hub from before it refuses the field)."""
    out = start.model_dump(exclude_none=True)
    if start.resume is not None and not start.resume.held_audio:
        out["resume"].pop("held_audio", None)
    return out


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
    #: the hub ended this connection because its session moved to another node (DESIGN §8: a WebSocket's
    #: close 1012, a gRPC call ended `node_lost`, a Socket.IO disconnect by the server, an SSE stream
    #: closed before `session.ended` or a POST refused for its epoch): the session has a live owner, so
    #: the client resumes at once, without its reconnect delay
    moved = False
