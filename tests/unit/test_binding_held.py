"""The errors a connection holds for after `session.ended` (SessionBinding.fail): in order, bounded, and
sent at once again when the session's events have all gone out."""

from __future__ import annotations

from typing import Any, cast

from asrhub.api.binding import MAX_HELD_ERRORS, SessionBinding
from asrhub.core.errors import ErrorCode, HubError


def test_errors_for_an_ended_session_are_held_in_order_and_bounded_then_sent_at_once() -> None:
    b = SessionBinding(cast(Any, None), "websocket", None)  # no session bound: not live
    b._owe_end()                                             # ... but its events are still owed here
    for i in range(4 * MAX_HELD_ERRORS):                     # a client flooding commands meanwhile
        assert b.fail(HubError(ErrorCode.invalid_command, f"refusal {i}")) is None
    held = []
    while (ev := b.held_error()) is not None:
        held.append(ev.message)
    assert held == [f"refusal {i}" for i in range(MAX_HELD_ERRORS)]
    later = b.fail(HubError(ErrorCode.invalid_command, "after the end"))
    assert later is not None and later.message == "after the end"
