"""`keepalive` and the per-session `idle_timeout_s` (DESIGN §3.1), on every streaming transport.

A session with `idle_timeout_s: 1` that gets a keepalive every 0.4 s and no audio stays open for as
long as they come, and is ended with reason `idle` about a second after they stop. A timer has to let
wall time pass; the test waits on the events themselves (session.ended), never on a fixed sleep for the
verdict. The hub's own bound (limits.idle_timeout_s, 8 s here) caps what a session may ask for.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.contract.clients import CLIENTS, PCM16, Client, connected
from tests.support import HubProcess, base_config, running

BOUND_S = 8.0


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HubProcess]:
    env = {"ASRHUB_LIMITS__IDLE_TIMEOUT_S": str(BOUND_S), "ASRHUB_LIMITS__RESUME_WINDOW_S": "1"}
    yield from running(base_config(), tmp_path_factory.mktemp("keepalive"), env=env)




def ended(c: Client) -> list[dict[str, Any]]:
    return [e for e in c.session_events() if e["type"] == "session.ended"]


@pytest.mark.parametrize("transport", list(CLIENTS))
async def test_keepalive_holds_a_short_idle_timeout_open(hub: HubProcess, transport: str) -> None:
    async with connected(hub, transport) as c:
        sid = await c.start({"audio": PCM16, "idle_timeout_s": 1})
        assert sid, c.events
        started = await c.wait_for(lambda e: e["type"] == "session.started")
        t0 = time.monotonic()
        while time.monotonic() - t0 < 2.0:  # 2 s of keepalives, twice the session's idle timeout
            await c.keepalive()
            await asyncio.sleep(0.4)  # the client's own pacing, not a synchronisation
            assert not ended(c), f"{transport}: ended while keepalives came: {ended(c)}"
        last = time.monotonic()
        events = await c.wait_ended(BOUND_S)  # well before the hub's own 8 s bound
        waited = time.monotonic() - last
    assert events[-1]["reason"] == "idle", events[-1]
    assert 0.5 <= waited < BOUND_S - 2, f"ended {waited:.2f} s after the last keepalive"
    assert not [e for e in events if e["type"] == "error"], events
    assert started["session_id"] == sid


@pytest.mark.parametrize("transport", list(CLIENTS))
async def test_idle_timeout_is_bounded_and_typed(hub: HubProcess, transport: str) -> None:
    for bad in (BOUND_S + 0.5, 3600, 0, -1):
        async with connected(hub, transport) as c:
            assert await c.start({"audio": PCM16, "idle_timeout_s": bad}) is None, bad
            err = await c.next_error(15)
            assert err["code"] == "invalid_command", err
            assert "idle_timeout_s" in err["message"], err
            if bad > BOUND_S:
                assert "limits.idle_timeout_s" in err["message"], err


@pytest.mark.parametrize("transport", [t for t in CLIENTS if t != "sse"])  # HTTP: see the next test
async def test_keepalive_before_start_is_refused(hub: HubProcess, transport: str) -> None:
    async with connected(hub, transport) as c:
        await c.keepalive()
        err = await c.next_error(15)
        assert err["code"] == "invalid_command", err
        assert "start" in err["message"], err


async def test_sse_keepalive_of_unknown_session(hub: HubProcess) -> None:
    import httpx
    async with httpx.AsyncClient(base_url=hub.http, timeout=15) as http:
        r = await http.post("/v1/sessions/no-such-session/keepalive")
    assert r.status_code == 404 and r.json()["error"]["code"] == "session_not_found", r.text
