"""Issue 13, node capacity (DESIGN §8 "Admission"): `/readyz` answers 503 while this node is full, so a
load balancer sends new clients elsewhere; a real hub process, a real WebSocket session."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import httpx
import websockets

from asrhub.api.rest import readiness
from asrhub.cluster.health import ClusterHealth
from asrhub.core.config import HubConfig
from asrhub.hub import Hub
from asrhub.store.hub import actions as HA
from tests.support import HubProcess, base_config

ONE_SESSION = "limits:\n  max_sessions: 1\n  idle_timeout_s: 20\n  resume_window_s: 5\n"


async def next_event(ws: websockets.ClientConnection, kind: str) -> dict:
    while True:
        event = json.loads(await ws.recv())
        if event["type"] == kind:
            return event


def test_readyz_is_503_full_while_the_node_is_at_max_sessions(tmp_path: Path) -> None:
    hub = HubProcess(base_config(limits=ONE_SESSION), tmp_path).start()

    async def run() -> None:
        async with httpx.AsyncClient(base_url=hub.http, timeout=10) as http:
            idle = await http.get("/readyz")
            assert idle.status_code == 200
            assert idle.json() == {"ready": True, "sessions": 0, "reason": None, "cluster": "off", "detail": None}
            async with websockets.connect(hub.ws) as ws:
                await ws.send(json.dumps({"type": "start"}))
                await next_event(ws, "session.started")
                full = await http.get("/readyz")
                assert full.status_code == 503
                assert full.json() == {"ready": False, "sessions": 1, "reason": "full", "cluster": "off", "detail": None}
                # What readyz says is what admission does: a second session here is refused.
                async with websockets.connect(hub.ws) as other:
                    await other.send(json.dumps({"type": "start"}))
                    refused = await next_event(other, "error")
                    assert refused["code"] == "too_many_sessions"
                await ws.send(json.dumps({"type": "stop"}))
                await next_event(ws, "session.ended")
            again = await http.get("/readyz")
            assert again.status_code == 200
            assert again.json() == {"ready": True, "sessions": 0, "reason": None, "cluster": "off", "detail": None}

    try:
        asyncio.run(asyncio.wait_for(run(), 60))
    finally:
        hub.stop()


class Link:
    """Stands for the node's cluster link: only its `degraded` flag matters to readiness."""

    def __init__(self) -> None:
        self.degraded = False


async def test_readiness_reports_the_cluster_link_and_stays_ready_when_degraded() -> None:
    hub = Hub(HubConfig())  # not started: no provider loads
    assert readiness(hub).model_dump() == {"ready": False, "sessions": 0, "reason": "starting", "cluster": "off", "detail": None}
    hub.service.dispatch(HA.ready_changed(HA.Flag(True)))
    assert readiness(hub).model_dump() == {"ready": True, "sessions": 0, "reason": None, "cluster": "off", "detail": None}
    link = Link()
    assert isinstance(link, ClusterHealth)
    hub.cluster = link  # type: ignore[attr-defined]  (the lead's ClusterNode sets it)
    assert readiness(hub).cluster == "ok"
    link.degraded = True  # Redis unreachable: local-only, still taking sessions
    assert readiness(hub).model_dump() == {"ready": True, "sessions": 0, "reason": None, "cluster": "degraded",
                                           "detail": None}
    hub.service.dispatch(HA.draining_started(HA.Flag(True)))
    assert readiness(hub).model_dump() == {"ready": False, "sessions": 0, "reason": "draining",
                                           "cluster": "degraded", "detail": None}
