"""How sessions finish well: after a `stop`, the session ends once its streams have delivered and its
awaited finals have come (or were given up); a shutdown drain stops every session so, within a grace
time, and ends whatever is not done by then."""

from __future__ import annotations

import asyncio
from typing import Any, Protocol

from ..core.config import HubConfig
from ..core.errors import HubError
from ..operators import turn as turn_mode
from ..store.sessions.selectors import select_live_sessions, select_sessions, select_state
from ..store.sessions.state import SessionState
from .session import Session


class StoppingHost(Protocol):
    """What finishing needs of the session service."""

    config: HubConfig

    @property
    def state(self) -> Any: ...

    def plane(self, session_id: str) -> Session | None: ...

    def is_live(self, session_id: str) -> bool: ...

    def stop(self, session_id: str, reason: str = "stop") -> None: ...

    def end(self, session_id: str, reason: str) -> None: ...

    def close_pipeline(self, s: Session) -> bool: ...


async def close_after(host: StoppingHost, s: Session, deciding: asyncio.Future[None], reason: str) -> None:
    """After `stop` in semantic turn mode while a decision on the audio received waits for the turn model's
    answer or a pause's speculative text (operators/turn.py): that decision, and those of the frames after
    it, are made as they would be without the stop (the answers each come within ANSWER_TIMEOUT_S, and the
    whole wait is bounded by it too), then the pipeline closes and the session finishes. Closing at once
    settled the waiting frames without them: under load a turn the model called finished ended as
    `max_silence` or `silence`. The final is the pause's speculative decode either way: waiting for its
    text costs it nothing."""
    try:
        await asyncio.wait_for(asyncio.shield(deciding), turn_mode.ANSWER_TIMEOUT_S)
    except TimeoutError:
        pass  # what still waits is settled by the close
    if host.is_live(s.id) and s.pipeline is not None and host.close_pipeline(s):
        await finish(host, s, reason)


async def finish(host: StoppingHost, s: Session, reason: str) -> None:
    """After `stop`: every stream the session has (it may move on failover) has delivered what it
    was asked for, and every awaited final has come or was given up (each has its deadline)."""
    while host.is_live(s.id):
        stream = s.stream
        if stream is not None:
            try:
                await asyncio.wait_for(stream.drain(), host.config.providers.timeout_s)
            except TimeoutError:
                pass  # the late finals' own timers move the session or give them up
        await s.settled.wait()
        if s.stream is stream:
            break
    host.end(s.id, reason)


async def drain(host: StoppingHost, grace_s: float) -> None:
    """Shutdown: finalise every open utterance, then end each session with reason "shutdown";
    whatever is not done within `grace_s` is ended as it is."""
    for sid in select_live_sessions(host.state):
        if select_state(host.state, sid) == SessionState.finalizing:
            continue
        try:
            host.stop(sid, "shutdown")
        except HubError:
            host.end(sid, "shutdown")
    tasks = [t for sid in select_sessions(host.state) if (s := host.plane(sid)) is not None for t in s.tasks]
    if tasks:
        await asyncio.wait(tasks, timeout=grace_s)
    for sid in select_live_sessions(host.state):
        host.end(sid, "shutdown")
