"""The store: pure reducers following the DESIGN §2.1 state machine, the transition guard, the
dispatch queue, and the real effects over ports that answer real actions."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Sequence
from typing import Any

import pytest
from pystorex import Action

from asrhub.core.events import (
    AudioFormat,
    EffectiveConfig,
    EffectiveVad,
    EffectiveWakeword,
    ErrorEvent,
    SessionEnded,
    SessionStarted,
    SessionStats,
    SpeechEnded,
    SpeechStarted,
)
from asrhub.store.base import EventPayload
from asrhub.store.providers import actions as PA
from asrhub.store.providers.selectors import select_status
from asrhub.store.root import build_store
from asrhub.store.sessions import actions as A
from asrhub.store.sessions.reducer import sessions_reducer
from asrhub.store.sessions.selectors import select_live_count, select_session
from asrhub.store.sessions.state import SessionState

CONFIG = EffectiveConfig(interim_results=True, word_timestamps=False,
                         vad=EffectiveVad(enabled=True, kind="webrtc", silence_ms=500, min_speech_ms=100,
                                          pre_roll_ms=200, max_utterance_s=30),
                         wakeword=EffectiveWakeword(enabled=False), record=False, hub_sample_rate=16000,
                         interim_interval_ms=300)


def started(sid: str) -> Action[A.Started]:
    ev = SessionStarted(session_id=sid, provider="p", audio=AudioFormat(encoding="pcm_s16le", sample_rate=16000,
                                                                        channels=1), config=CONFIG)
    return A.started(A.Started(sid, ev))


def edge(sid: str, speaking: bool, uid: str = "u1") -> Action[A.SpeechEdge]:
    ev = SpeechStarted(session_id=sid, offset_ms=0) if speaking else SpeechEnded(session_id=sid, offset_ms=0)
    return A.speech_edge(A.SpeechEdge(sid, ev, speaking, uid))


class Ports:
    """StreamPort + FailoverPort + ChannelPort that record what they are asked and answer real actions."""

    def __init__(self) -> None:
        self.delivered: list[tuple[str, str]] = []
        self.closed: list[str] = []
        self.ended: list[tuple[str, str]] = []
        self.failed: list[tuple[str, str | None, str, bool]] = []
        self.down: list[str] = []
        self.probes: list[str] = []
        self.probe_result: asyncio.Future[Sequence[Action[Any]]] | None = None

    # StreamPort
    def open_stream(self, session_id: str) -> Sequence[Action[Any]]:
        if session_id.startswith("bad"):
            raise RuntimeError("provider exploded")
        return [started(session_id)]

    def close_stream(self, session_id: str) -> Sequence[Action[Any]]:
        self.closed.append(session_id)
        return ()

    def end_session(self, session_id: str, reason: str) -> Sequence[Action[Any]]:
        self.ended.append((session_id, reason))
        stats = SessionStats(audio_ms=1000)
        ev = SessionEnded(session_id=session_id, reason=reason, stats=stats)  # type: ignore[arg-type]
        return [A.ended(A.Ended(session_id, ev, reason, stats))]

    # ChannelPort
    def deliver(self, payload: EventPayload) -> None:
        self.delivered.append((payload.session_id, payload.event.type))

    # FailoverPort
    def provider_failed(self, session_id: str, utterance_id: str | None, provider: str, reason: str,
                        timeout: bool) -> Sequence[Action[Any]]:
        self.failed.append((session_id, utterance_id, reason, timeout))
        ev = ErrorEvent(session_id=session_id, code="provider_error", message=reason, fatal=False)
        return [A.error_raised(A.ErrorRaised(session_id, ev, "provider_error", False))]

    def final_timed_out(self, session_id: str, utterance_id: str) -> Sequence[Action[Any]]:
        return [PA.failed(PA.Failed("p", session_id, utterance_id, "timeout", timeout=True))]

    def provider_down(self, provider: str, reason: str) -> Sequence[Action[Any]]:
        self.down.append(provider)
        return ()

    def probe(self, provider: str) -> Any:
        self.probes.append(provider)
        return self.probe_result


def test_reducer_is_pure_and_follows_the_state_machine() -> None:
    s0 = sessions_reducer(sessions_reducer.initial_state, A.created(A.Created("s1", "p", "websocket", None, 1.0)))
    s2 = sessions_reducer(s0, started("s1"))
    again = sessions_reducer(s0, started("s1"))
    assert s2 == again and s0["s1"].state == SessionState.created  # same input, same output; input untouched
    s3 = sessions_reducer(s2, edge("s1", True))
    assert s3["s1"].state == SessionState.speaking and s3["s1"].stats.utterances == 1
    s4 = sessions_reducer(s3, A.stop_requested(A.SessionRef("s1")))
    assert s4["s1"].state == SessionState.finalizing
    s5 = sessions_reducer(s4, edge("s1", False))  # `stop` closed the open utterance: no transition
    assert s5["s1"].state == SessionState.finalizing
    # audio received before the stop, decided after it (turn mode), opens one more utterance: counted, no transition
    s5 = sessions_reducer(s5, edge("s1", True))
    assert s5["s1"].state == SessionState.finalizing and s5["s1"].stats.utterances == 2
    s6 = sessions_reducer(s5, A.removed(A.SessionRef("s1")))
    assert "s1" not in s6


def test_illegal_transitions_become_a_logged_error_action(caplog: pytest.LogCaptureFixture) -> None:
    ports = Ports()
    store = build_store(ports, ports, ports)
    seen: list[str] = []
    store._action_subject.subscribe(lambda a: seen.append(a.type))
    store.dispatch(A.created(A.Created("s1", "p", "websocket", None, 1.0)))
    assert select_session(store.state, "s1").state == SessionState.listening
    store.dispatch(A.stop_requested(A.SessionRef("s1")))
    caplog.set_level(logging.WARNING, logger="asrhub.store")
    store.dispatch(A.stop_requested(A.SessionRef("s1")))      # a second stop
    store.dispatch(started("s1"))                             # a second start, while stopping
    store.dispatch(edge("s1", True))  # audio received before the stop, decided after it: delivered, no transition
    assert ("s1", "speech.started") in ports.delivered
    assert select_session(store.state, "s1").state == SessionState.finalizing
    store.dispatch(A.end_requested(A.EndRequested("s1", "stop")))
    store.dispatch(edge("s1", False))                         # an event after session.ended
    rec = select_session(store.state, "s1")
    assert rec.state == SessionState.ended and ports.ended == [("s1", "stop")] and rec.stats.utterances == 1
    assert seen.count(A.illegal_transition.type) == 3
    assert seen.count(A.speech_edge.type) == 1  # the one after session.ended reached no reducer or router
    assert ("s1", "speech.ended") not in ports.delivered
    messages = [r.getMessage() for r in caplog.records]
    assert any("[Session] Stop Requested is not allowed in state finalizing" in m for m in messages), messages
    assert any("[Session] Speech Edge is not allowed in state ended" in m for m in messages), messages


def test_effect_failure_for_one_session_does_not_stop_the_others() -> None:
    ports = Ports()
    store = build_store(ports, ports, ports)
    for sid in ("bad1", "good1", "bad2", "good2"):
        store.dispatch(A.created(A.Created(sid, "p", "websocket", None, 1.0)))
    state = store.state
    assert select_session(state, "good1").state == SessionState.listening
    assert select_session(state, "good2").state == SessionState.listening
    assert select_session(state, "bad1").state == SessionState.ended
    assert ("bad1", "error") in ports.ended
    # the router delivered the error before the session.ended its effect asked for
    bad1 = [t for s, t in ports.delivered if s == "bad1"]
    assert bad1 == ["error", "session.ended"]
    assert ("good2", "session.started") in ports.delivered
    assert select_live_count(state) == 2
    store.dispatch(A.idle_detected(A.SessionRef("good1")))
    assert ("good1", "idle") in ports.ended and select_session(store.state, "good1").state == SessionState.ended
    assert ports.closed == ["bad1", "bad2", "good1"]
    assert select_live_count(store.state) == 1


def test_failover_effects_call_their_port() -> None:
    ports = Ports()
    store = build_store(ports, ports, ports)
    store.dispatch(A.created(A.Created("s1", "p", "websocket", None, 1.0)))
    store.dispatch(A.final_timed_out(A.UtteranceRef("s1", "u3")))
    assert ports.failed == [("s1", "u3", "timeout", True)]
    assert [t for s, t in ports.delivered if s == "s1"] == ["session.started", "error"]
    store.dispatch(PA.status_changed(PA.StatusChanged("p", "available", None)))
    assert ports.down == [] and ports.probes == []
    store.dispatch(PA.status_changed(PA.StatusChanged("p", "unhealthy", "boom")))
    assert ports.down == ["p"] and ports.probes == ["p"]
    assert select_status(store.state, "p") == ("unhealthy", "boom")


async def test_a_probe_reports_back_through_an_action() -> None:
    ports = Ports()
    ports.probe_result = asyncio.get_running_loop().create_future()
    store = build_store(ports, ports, ports)
    store.dispatch(PA.status_changed(PA.StatusChanged("p", "unhealthy", "boom")))
    assert select_status(store.state, "p")[0] == "unhealthy"
    back = asyncio.Event()
    store._action_subject.subscribe(lambda a: back.set() if a.type == PA.status_changed.type else None)
    ports.probe_result.set_result([PA.status_changed(PA.StatusChanged("p", "available", None))])
    await asyncio.wait_for(back.wait(), 5)
    assert select_status(store.state, "p") == ("available", None)


def test_a_changed_record_is_what_dataclasses_replace_gives() -> None:
    rec = sessions_reducer(sessions_reducer.initial_state, A.created(A.Created("s1", "p", "websocket", "k", 1.0)))["s1"]
    new = rec.changed(state=SessionState.speaking, provider="q")
    assert new == dataclasses.replace(rec, state=SessionState.speaking, provider="q") and type(new) is type(rec)
    assert (rec.state, rec.provider) == (SessionState.created, "p")  # the old record is untouched
    with pytest.raises(TypeError, match="no field \\['providr'\\]"):
        rec.changed(providr="q")
    with pytest.raises(dataclasses.FrozenInstanceError):
        new.provider = "r"  # type: ignore[misc]
