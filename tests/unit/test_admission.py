"""Admission (engine/admission.py): a new session is refused when the hub is full, when its key is, and
when finals already trail their audio by more than `limits.admission_lag_s` (inference is saturated);
a session that has ended does not count. Real service, scripted provider on the loop."""

from __future__ import annotations

import pytest

from asrhub.core.commands import parse_start
from asrhub.core.errors import ErrorCode, HubError, KeyQuotaError
from asrhub.engine.service import SessionService
from asrhub.engine.session import Session
from tests.unit.test_service import CHUNK, VirtualTimeLoop, run, service, settle, started

START = {"audio": {"encoding": "pcm_s16le", "sample_rate": 16000}}


def limits(svc: SessionService, **values: float) -> None:
    svc.config = svc.config.model_copy(update={"limits": svc.config.limits.model_copy(update=values)})


def another(svc: SessionService, api_key: str | None = None) -> Session:
    return svc.start_session(parse_start(START), "test", api_key)


async def waiting_for_a_final(svc: SessionService) -> Session:
    """A live session whose utterance waits for a final that does not come (provider `hang`)."""
    s = await started(svc)
    svc.push_audio(s.id, CHUNK)
    svc.flush(s.id)
    await settle()
    assert s.pending and svc.is_live(s.id)
    return s


def test_finals_that_trail_their_audio_refuse_new_sessions() -> None:
    async def body(loop: VirtualTimeLoop) -> None:
        svc = service(modes={"a": "hang", "b": "hang"})
        refused: list[str] = []
        svc.admission.on_refused = refused.append
        s = await waiting_for_a_final(svc)
        lag = svc.max_pending_lag()
        assert 0 < lag < 2.0
        assert another(svc).id != s.id  # the default 2 s: this lag is admitted
        limits(svc, admission_lag_s=1e-6)  # (every lag is longer than this one)
        with pytest.raises(HubError) as e:
            another(svc)
        err = e.value
        assert err.code is ErrorCode.too_many_sessions and err.http_status == 503 and err.retryable
        assert "results trail audio by" in err.message and err.retry_after_s == 1  # at least 1 s
        assert not isinstance(err, KeyQuotaError)  # the hub's capacity, not the key's quota
        assert refused == ["lag"]
        assert svc.max_pending_lag() >= lag  # measured from the same audio: it only grows
        await svc.failover.close()
    run(body)


def test_an_ended_session_waiting_for_nothing_does_not_count() -> None:
    async def body(loop: VirtualTimeLoop) -> None:
        svc = service(modes={"a": "hang", "b": "hang"})
        s = await waiting_for_a_final(svc)
        limits(svc, admission_lag_s=1e-6)
        with pytest.raises(HubError):
            another(svc)
        svc.abort(s.id)  # ended at once, its final given up
        await settle()
        assert not svc.is_live(s.id)
        assert svc.max_pending_lag() == 0.0
        assert svc.is_live(another(svc).id)
        await svc.failover.close()
    run(body)


def test_no_pending_audio_is_no_lag() -> None:
    async def body(loop: VirtualTimeLoop) -> None:
        svc = service()
        s = await started(svc)
        svc.push_audio(s.id, CHUNK)  # an open utterance: not waiting for its final yet
        await settle()
        assert svc.max_pending_lag() == 0.0
        limits(svc, admission_lag_s=1e-6)
        assert svc.is_live(another(svc).id)
        await svc.failover.close()
    run(body)


def test_the_hub_full_and_a_key_full_are_refused_with_their_reasons() -> None:
    async def body(loop: VirtualTimeLoop) -> None:
        svc = service()
        refused: list[str] = []
        svc.admission.on_refused = refused.append
        await started(svc)
        limits(svc, max_sessions=3, max_sessions_per_key=1)
        another(svc, "k1")
        with pytest.raises(KeyQuotaError) as key_full:
            another(svc, "k1")
        assert key_full.value.code is ErrorCode.too_many_sessions and key_full.value.http_status == 429
        assert "this API key is at its limit of 1" in key_full.value.message
        another(svc, "k2")  # another key has room
        with pytest.raises(HubError) as hub_full:
            another(svc, "k3")
        assert hub_full.value.http_status == 503 and "limit of 3 sessions" in hub_full.value.message
        assert hub_full.value.retry_after_s == 5 and key_full.value.retry_after_s == 5
        assert refused == ["key_sessions", "sessions"]
        await svc.failover.close()
    run(body)
