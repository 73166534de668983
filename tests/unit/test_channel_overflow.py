"""EventChannel overflow: a reader that does not take events is reported once, and the fatal error and
session.ended that end the session still go into the full history (no recursion through the service)."""

from __future__ import annotations

import asyncio

import pytest

from asrhub.core.channel import ChannelOverflow, EventChannel
from asrhub.core.events import ErrorEvent, SessionEnded, SpeechStarted


def test_overflow_is_raised_once_and_later_events_still_go_in() -> None:
    async def run() -> None:
        ch = EventChannel("s", 64)
        reader = ch.subscribe(0)
        ch.emit(SpeechStarted(session_id="", offset_ms=0))
        assert (await reader.__anext__()).seq == 1  # seq 1 delivered, then the reader stops taking
        for i in range(64):  # seq 2..65: the history holds 64, one of them delivered
            ch.emit(SpeechStarted(session_id="", offset_ms=i))
        with pytest.raises(ChannelOverflow):
            ch.emit(SpeechStarted(session_id="", offset_ms=99))  # drops seq 2, never delivered
        assert ch.overflowed and ch.last_seq == 66
        ch.emit(ErrorEvent(session_id="", code="slow_consumer", message="client is not reading events", fatal=True))
        ch.emit(SessionEnded(session_id="", reason="error", stats={}))
        assert ch.closed and ch.last_seq == 68
        got = [ev async for ev in reader]  # the rest of the history, ending with session.ended
        assert [e.type for e in got[-2:]] == ["error", "session.ended"]

    asyncio.run(run())
