"""A session's own idle timeout (StartSession.idle_timeout_s) and keepalive, in process on the virtual
clock of test_service (no sockets, no sleeping): the wire-level version is tests/contract/test_keepalive.py."""

from __future__ import annotations

import pytest

from asrhub.core.errors import HubError
from tests.unit.test_service import VirtualTimeLoop, events, run, service, settle, started


def test_keepalives_hold_a_short_session_timeout_then_it_ends_idle() -> None:
    async def body(loop: VirtualTimeLoop) -> None:
        svc = service(idle_s=10.0)
        short = await started(svc, idle_timeout_s=1)
        default = await started(svc)
        for _ in range(5):  # 2 s of keepalives every 0.4 s: twice its timeout
            await loop.advance(0.4)
            svc.keepalive(short.id)
        await settle()
        assert svc.is_live(short.id) and svc.is_live(default.id)
        await loop.advance(1.05)  # a second without keepalive
        await settle()
        assert not svc.is_live(short.id)
        assert events(short)[-1].reason == "idle"
        assert svc.is_live(default.id)  # the hub's own 10 s still applies to the other one
        await loop.advance(8.0)
        await settle()
        assert not svc.is_live(default.id) and events(default)[-1].reason == "idle"
    run(body)


def test_audio_resets_the_short_timeout_too_and_the_bound_holds() -> None:
    async def body(loop: VirtualTimeLoop) -> None:
        svc = service(idle_s=10.0)
        s = await started(svc, idle_timeout_s=2)
        await loop.advance(1.5)
        svc.push_audio(s.id, bytes(3200))
        await loop.advance(1.5)
        await settle()
        assert svc.is_live(s.id)
        with pytest.raises(HubError) as info:
            await started(svc, idle_timeout_s=10.5)
        assert info.value.code.value == "invalid_command" and "limits.idle_timeout_s" in info.value.message
        svc.stop(s.id)
        await settle()
    run(body)
