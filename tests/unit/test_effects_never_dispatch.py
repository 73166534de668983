"""Effects never dispatch (ARCHITECTURE.md): each maps an action to a port call and returns the actions
the port answers; the store dispatches those. Nothing an effect runs may call the store's dispatch itself.

The guard stands where every caller but the effects reaches the store: `store.dispatch` as it is looked
up at call time (the service's `dispatch`, its timers, the streams' sink). The effects' subscriptions bound
the store's dispatch when they were registered, so the actions an effect returns reach the store without
passing the guard. A call that reaches the guard while another action is being processed was therefore
made from inside the store's processing: an effect (through its port) dispatching.

Every scenario of tests/unit/test_service.py (a session start to end, failover, a late final, no fallback,
an unhealthy report, idle, detach, a request error) runs under the guard, and so does a client that stops
reading its events (the router's delivery fails: the error is an action the router effect returns).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

import tests.unit.test_service as scenarios
from asrhub.core.config import parse_config
from asrhub.engine.scheduler import Scheduler
from asrhub.engine.service import SessionService
from asrhub.providers.registry import ProviderSet
from asrhub.store.sessions import actions as A
from asrhub.store.sessions.selectors import select_session
from asrhub.store.sessions.state import SessionState
from tests.unit.test_service import CHUNK, SCRIPTED, VirtualTimeLoop, events, settle, started, types


class DispatchGuard:
    """Stands in for `store.dispatch` (after the effects were registered) and records every dispatch that
    arrives while another one is in flight."""

    def __init__(self, svc: SessionService) -> None:
        self.inner = svc.store.dispatch
        self.depth = 0
        self.seen: list[str] = []     # action types dispatched from outside the store
        self.nested: list[str] = []   # ... and those dispatched from inside it (by an effect)
        svc.store.dispatch = self  # type: ignore[method-assign]

    def __call__(self, action: Any) -> Any:
        (self.nested if self.depth else self.seen).append(action.type)
        self.depth += 1
        try:
            return self.inner(action)
        finally:
            self.depth -= 1


def guarded(make: Callable[..., SessionService], guards: list[DispatchGuard]) -> Callable[..., SessionService]:
    def build(**kwargs: Any) -> SessionService:
        svc = make(**kwargs)
        guards.append(DispatchGuard(svc))
        return svc
    return build


SCENARIOS = sorted((n, f) for n, f in vars(scenarios).items() if n.startswith("test_") and callable(f))


@pytest.mark.parametrize("scenario", [f for _, f in SCENARIOS], ids=[n for n, _ in SCENARIOS])
def test_no_effect_dispatches(scenario: Callable[[], None], monkeypatch: pytest.MonkeyPatch) -> None:
    guards: list[DispatchGuard] = []
    monkeypatch.setattr(scenarios, "service", guarded(scenarios.service, guards))
    scenario()
    assert guards, "the scenario built no service"
    for g in guards:
        assert g.seen, "nothing reached the store through the guard: it guards nothing"
        # `[Session] Started` is what the open_stream effect returns: it reaches the store, not the guard
        assert A.created.type in g.seen and A.started.type not in g.seen
        assert g.nested == [], f"dispatched from inside an effect: {g.nested}"


def test_a_client_that_stops_reading_hears_a_fatal_error_returned_by_the_router() -> None:
    cfg = parse_config({
        "limits": {"max_events_buffered": 64},
        "pipeline": {"vad": {"enabled": False}},
        "providers": {"default": "a", "fallback": ["a"], "instances": {"a": {"type": SCRIPTED}}},
    })

    async def body(loop: VirtualTimeLoop) -> None:
        svc = SessionService(cfg, ProviderSet(cfg.providers, Scheduler(1)))
        guard = DispatchGuard(svc)
        s = await started(svc)
        reader = svc.events(s.id)
        assert (await reader.__anext__()).type == "session.started"  # then it stops taking events
        for _ in range(30):  # 3 events each (speech.started, speech.ended, transcript.final): past 64
            if not svc.is_open(s.id):
                break
            svc.push_audio(s.id, CHUNK)
            svc.flush(s.id)
            await settle()
        errors = [e for e in events(s) if e.type == "error"]
        assert [(e.code, e.fatal) for e in errors] == [("slow_consumer", True)]
        assert "client is not reading events" in errors[0].message
        assert types(s)[-1] == "session.ended" and events(s)[-1].reason == "error"
        assert select_session(svc.state, s.id).state == SessionState.ended
        assert guard.nested == [], f"dispatched from inside an effect: {guard.nested}"
        await reader.aclose()

    scenarios.run(body)
