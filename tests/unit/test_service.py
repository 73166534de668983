"""The session service in process: scripted providers, a virtual clock, no sockets, no sleeping.

The loop's clock is virtual (`VirtualTimeLoop.advance`): the service's timers (a late final, an idle
session, a provider probe) fire when the test moves time on, not when wall time passes.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any

import pytest

from asrhub.core.config import parse_config
from asrhub.core.errors import HubError
from asrhub.core.events import Event
from asrhub.engine.scheduler import Scheduler
from asrhub.engine.service import SessionService
from asrhub.engine.session import Session
from asrhub.providers.registry import ProviderSet
from asrhub.store.providers.selectors import select_status
from asrhub.store.sessions.selectors import select_session
from asrhub.store.sessions.state import SessionState
from tests.fixtures.scripted import ScriptedProvider

SCRIPTED = "tests.fixtures.scripted:ScriptedProvider"
CHUNK = b"\x01\x00" * 1600  # 100 ms of 16 kHz PCM (with the VAD off, every chunk is speech)


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    """An event loop whose clock moves only when told to (plus the real time that passes)."""

    def __init__(self) -> None:
        super().__init__()
        self._offset = 0.0
        self._idle: asyncio.Event | None = None

    def time(self) -> float:
        return super().time() + self._offset

    async def advance(self, seconds: float) -> None:
        self._offset += seconds
        await self.idle()

    def _runnable(self) -> bool:
        """A callback is ready, or a timer is due (the clock having moved)."""
        now = self.time()
        return bool(self._ready) or any(not h.cancelled() and h.when() <= now  # type: ignore[attr-defined]
                                        for h in self._scheduled)  # type: ignore[attr-defined]

    def _run_once(self) -> None:
        super()._run_once()  # type: ignore[misc]
        if self._idle is not None and not self._runnable():
            self._idle.set()  # the loop would now block: whoever waits in idle() runs next

    async def idle(self) -> None:
        """Until nothing on the loop can run: the timers now due have run, and so has everything they set
        off. The loop itself tells (after the turn that left nothing runnable), not a number of turns."""
        self._idle = asyncio.Event()
        try:
            await self._idle.wait()
        finally:
            self._idle = None


def run(test: Callable[[VirtualTimeLoop], Coroutine[Any, Any, None]]) -> None:
    loop = VirtualTimeLoop()
    try:
        loop.run_until_complete(test(loop))
    finally:
        loop.close()


def service(*, fallback: tuple[str, ...] = ("b",), idle_s: float = 60.0, timeout_s: float = 5.0,
            modes: dict[str, str] | None = None) -> SessionService:
    modes = modes or {"a": "ok", "b": "ok"}
    cfg = parse_config({
        "limits": {"idle_timeout_s": idle_s, "resume_window_s": 5},
        "pipeline": {"vad": {"enabled": False}},
        "providers": {"default": "a", "fallback": ["a", *fallback], "timeout_s": timeout_s, "probe_interval_s": 1,
                      "instances": {n: {"type": SCRIPTED, "mode": m} for n, m in modes.items()}},
    })
    return SessionService(cfg, ProviderSet(cfg.providers, Scheduler(1)))


async def started(svc: SessionService, **start: Any) -> Session:
    await svc.providers.load()
    svc.report_health(svc.providers.providers.values())
    from asrhub.core.commands import parse_start
    return svc.start_session(parse_start({"audio": {"encoding": "pcm_s16le", "sample_rate": 16000}, **start}),
                             "test")


def events(s: Session) -> list[Event]:
    return s.channel.replay_from(0)


def types(s: Session) -> list[str]:
    return [e.type for e in events(s)]


def provider(svc: SessionService, name: str) -> ScriptedProvider:
    p = svc.providers.providers[name]
    assert isinstance(p, ScriptedProvider)
    return p


async def settle() -> None:
    """Until the (virtual-time) loop is idle: what the last command set off has happened."""
    loop = asyncio.get_running_loop()
    assert isinstance(loop, VirtualTimeLoop)
    await loop.idle()


def test_a_session_runs_start_to_end() -> None:
    async def body(loop: VirtualTimeLoop) -> None:
        svc = service()
        s = await started(svc)
        assert select_session(svc.state, s.id).state == SessionState.listening
        svc.push_audio(s.id, CHUNK)
        assert select_session(svc.state, s.id).state == SessionState.speaking
        svc.flush(s.id)
        await settle()
        svc.push_audio(s.id, CHUNK)
        svc.stop(s.id)
        assert select_session(svc.state, s.id).state == SessionState.finalizing
        await settle()
        assert types(s) == ["session.started", "speech.started", "speech.ended", "transcript.final",
                            "speech.started", "speech.ended", "transcript.final", "session.ended"]
        finals = [e for e in events(s) if e.type == "transcript.final"]
        assert [f.text for f in finals] == ["a:u1", "a:u2"]
        ended = events(s)[-1]
        assert [e.seq for e in events(s)] == list(range(1, 9))
        stats = ended.stats
        assert (stats.utterances, stats.finals, stats.audio_ms) == (2, 2, 200)
        rec = select_session(svc.state, s.id)
        assert rec.state == SessionState.ended and ended.reason == "stop" and rec.stats.finals == 2
    run(body)


def test_commands_are_gated_by_the_store() -> None:
    async def body(loop: VirtualTimeLoop) -> None:
        svc = service()
        s = await started(svc)
        svc.stop(s.id)
        with pytest.raises(HubError, match="is stopping"):
            svc.push_audio(s.id, CHUNK)
        with pytest.raises(HubError, match="is stopping"):
            svc.stop(s.id)
        await settle()
        assert not svc.is_live(s.id)
        with pytest.raises(HubError, match="has ended"):
            svc.flush(s.id)
        with pytest.raises(HubError) as e:
            svc.push_audio("nope", CHUNK)
        assert e.value.code.value == "session_not_found"
    run(body)


def test_a_failed_final_moves_the_session_and_loses_no_words() -> None:
    async def body(loop: VirtualTimeLoop) -> None:
        svc = service(modes={"a": "fail", "b": "ok"})
        s = await started(svc)
        svc.push_audio(s.id, CHUNK)
        svc.flush(s.id)
        await settle()
        switched = [e for e in events(s) if e.type == "provider.switched"]
        assert len(switched) == 1 and switched[0].to_dict()["from"] == "a" and switched[0].to == "b"
        assert switched[0].reason == "error: a exploded"
        finals = [e for e in events(s) if e.type == "transcript.final"]
        assert [f.text for f in finals] == ["b:u1"]  # the utterance was replayed on b
        assert select_session(svc.state, s.id).provider == "b"
        assert select_status(svc.state, "a")[0] == "unhealthy"
        # the probe brings `a` back once it answers
        provider(svc, "a").mode = "ok"
        await loop.advance(1.0)
        await settle()
        assert select_status(svc.state, "a") == ("available", None)
        await svc.failover.close()
    run(body)


def test_the_record_alone_says_where_a_session_is_each_moves_once() -> None:
    """s1's failure moves it and marks `a` unhealthy, which moves s2: each is moved once, because the move's
    own action (provider switched, first among them) has told the record before the status change runs.
    The session-end log line names the provider from the record."""
    async def body(loop: VirtualTimeLoop) -> None:
        svc = service(modes={"a": "ok", "b": "ok"})
        s1 = await started(svc)
        s2 = svc.start_session(s1.start, "test", "key2")
        provider(svc, "a").mode = "fail"
        svc.push_audio(s1.id, CHUNK)
        svc.flush(s1.id)
        await settle()
        for s in (s1, s2):
            sw = [e for e in events(s) if e.type == "provider.switched"]
            assert [(e.to_dict()["from"], e.to) for e in sw] == [("a", "b")], (s.id, sw)
            assert select_session(svc.state, s.id).provider == "b"
        assert [e.text for e in events(s1) if e.type == "transcript.final"] == ["b:u1"]
        assert svc.metrics.registry.get_sample_value("asrhub_failovers_total", {"from": "a", "to": "b"}) == 2
        ends: list[logging.LogRecord] = []
        handler = logging.Handler(logging.INFO)
        handler.emit = ends.append  # type: ignore[method-assign]
        log = logging.getLogger("asrhub.sessions")
        log.addHandler(handler)
        level = log.level
        log.setLevel(logging.INFO)
        try:
            svc.stop(s2.id)
            await settle()
        finally:
            log.removeHandler(handler)
            log.setLevel(level)
        assert [(r.__dict__["key_id"], r.__dict__["transport"], r.__dict__["provider"], r.__dict__["reason"])
                for r in ends] == [("key2", "test", "b", "stop")]
        await svc.failover.close()
    run(body)


def test_a_late_final_times_out_and_moves_the_session() -> None:
    async def body(loop: VirtualTimeLoop) -> None:
        svc = service(modes={"a": "hang", "b": "ok"}, timeout_s=5.0)
        s = await started(svc)
        svc.push_audio(s.id, CHUNK)
        svc.stop(s.id)
        await settle()
        assert "transcript.final" not in types(s) and svc.is_live(s.id)
        await loop.advance(4.9)
        assert "provider.switched" not in types(s)
        await loop.advance(0.2)
        await settle()
        sw = [e for e in events(s) if e.type == "provider.switched"]
        assert len(sw) == 1 and sw[0].reason == "timeout"
        assert [e.text for e in events(s) if e.type == "transcript.final"] == ["b:u1"]
        assert types(s)[-1] == "session.ended" and events(s)[-1].reason == "stop"
        await svc.failover.close()
    run(body)


def test_with_no_fallback_left_the_session_hears_the_failure_and_ends() -> None:
    async def body(loop: VirtualTimeLoop) -> None:
        svc = service(fallback=(), modes={"a": "hang"}, timeout_s=5.0)
        s = await started(svc)
        svc.push_audio(s.id, CHUNK)
        svc.stop(s.id)
        await loop.advance(5.1)
        await settle()
        errors = [e for e in events(s) if e.type == "error"]
        assert len(errors) == 1 and errors[0].code == "provider_error"
        assert "did not deliver the final of u1 in 5 s" in errors[0].message
        assert types(s)[-1] == "session.ended"
        # its only provider was not marked unhealthy: new sessions still get it
        assert select_status(svc.state, "a")[0] == "available"
    run(body)


def test_an_unhealthy_report_moves_the_open_utterance() -> None:
    async def body(loop: VirtualTimeLoop) -> None:
        svc = service()
        s = await started(svc)
        svc.push_audio(s.id, CHUNK)
        provider(svc, "a").set_health("unhealthy", "engine stopped")  # as a provider's own thread would
        await settle()
        sw = [e for e in events(s) if e.type == "provider.switched"]
        assert len(sw) == 1 and sw[0].reason == "unhealthy: engine stopped"
        svc.flush(s.id)
        await settle()
        assert [e.text for e in events(s) if e.type == "transcript.final"] == ["b:u1"]
        await svc.failover.close()
    run(body)


def test_an_idle_session_ends_when_its_timer_fires() -> None:
    async def body(loop: VirtualTimeLoop) -> None:
        svc = service(idle_s=10.0)
        s = await started(svc)
        await loop.advance(6.0)
        svc.keepalive(s.id)
        await loop.advance(6.0)
        assert svc.is_live(s.id)  # the keepalive moved its deadline on
        await loop.advance(4.5)
        await settle()
        assert not svc.is_live(s.id)
        assert events(s)[-1].reason == "idle"
    run(body)


def test_a_detached_session_waits_for_its_client_then_ends() -> None:
    async def body(loop: VirtualTimeLoop) -> None:
        svc = service()
        s = await started(svc)
        svc.detach(s.id)
        assert select_session(svc.state, s.id).attached is False
        again = svc.resume(s.id, 1)
        assert again is s and select_session(svc.state, s.id).attached is True
        svc.detach(s.id)
        await loop.advance(5.1)
        await settle()
        assert events(s)[-1].reason == "client_gone"
    run(body)


def test_a_request_error_from_the_provider_is_not_a_provider_failure() -> None:
    """Failover classifies by type: a provider raising a client error (here invalid_audio) does not
    move the session or mark the provider unhealthy; the session hears the error itself."""
    async def body(loop: VirtualTimeLoop) -> None:
        from asrhub.core.errors import ClientError, ErrorCode

        svc = service()
        s = await started(svc)
        svc.push_audio(s.id, CHUNK)
        assert s.stream is not None
        s.stream.sink.on_error(ClientError(ErrorCode.invalid_audio, "cannot decode this"), "u1")  # type: ignore[attr-defined]
        await settle()
        assert "provider.switched" not in types(s)
        errors = [e for e in events(s) if e.type == "error"]
        assert [(e.code, e.message) for e in errors] == [("invalid_audio", "cannot decode this")]
        assert select_status(svc.state, "a")[0] == "available" and svc.is_live(s.id)
    run(body)


def test_a_resume_of_an_ended_session_still_kept_has_no_answer() -> None:
    """An ended session's plane is kept a while with its pipeline released: a resume's answer (a cluster
    node's inbox asks for it on an attach) is the one for a session not held here, not an AssertionError
    (the owner's inbox failed on an attach that came after the session ended)."""
    from asrhub.engine.resume_point import resume_answer

    async def body(loop: VirtualTimeLoop) -> None:
        svc = service()
        s = await started(svc)
        answer = resume_answer(svc, s.id)
        assert answer is not None and answer.resumed and answer.audio_from_ms == 0
        svc.push_audio(s.id, CHUNK)
        svc.stop(s.id)
        await settle()
        assert svc.plane(s.id) is not None and s.pipeline is None  # ended, the plane kept
        assert resume_answer(svc, s.id) is None
    run(body)
