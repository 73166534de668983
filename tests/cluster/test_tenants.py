"""Issue 24: tenant isolation across a cluster. A session owned by another node is as private as a local
one: another API key resuming it, reading its events or driving it through this node gets the unknown
session's answer word for word; its own key resumes it here. Two real nodes on one redis-server."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import websockets

from tests.cluster.nodes import Cluster
from tests.contract.clients import PCM16
from tests.support import HubProcess

ALPHA, BETA = "alpha-cluster-key", "beta-cluster-key"
UNKNOWN = "e" * 32


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    keys = f"[{{key: {ALPHA}, name: alpha}}, {{key: {BETA}, name: beta}}]"
    c = Cluster(tmp_path_factory.mktemp("tenants"), 2, env={"ASRHUB_SERVER__AUTH__API_KEYS": keys})
    yield c
    c.stop()


async def ws_resume(node: HubProcess, key: str, sid: str) -> dict[str, Any]:
    async with websockets.connect(f"{node.ws}?token={key}") as ws:
        await ws.send(json.dumps({"type": "start", "resume": {"session_id": sid, "last_seq": 0}}))
        return dict(json.loads(await ws.recv()))


def without_ts(ev: dict[str, Any], sid: str) -> dict[str, Any]:
    return json.loads(json.dumps({k: v for k, v in ev.items() if k != "ts"}).replace(sid, UNKNOWN))  # type: ignore


async def test_another_nodes_session_answers_only_its_own_key(cluster: Cluster) -> None:
    owner, other = cluster.nodes
    async with websockets.connect(f"{owner.ws}?token={ALPHA}") as ws:
        await ws.send(json.dumps({"type": "start", "audio": PCM16}))
        sid = json.loads(await ws.recv())["session_id"]
        await ws.send(b"\0" * 32000)
    # the client dropped: the session waits on node0 for a resume; node1 serves it through Redis
    foreign = await ws_resume(other, BETA, sid)
    unknown = await ws_resume(other, BETA, UNKNOWN)
    assert foreign["code"] == "session_not_found", foreign
    assert without_ts(foreign, sid) == without_ts(unknown, UNKNOWN), (foreign, unknown)
    async with httpx.AsyncClient(base_url=other.http, timeout=30) as http:
        h = {"Authorization": f"Bearer {BETA}"}
        for method, path in (("GET", "/events"), ("POST", "/flush"), ("POST", "/audio"), ("DELETE", "")):
            r = await http.request(method, f"/v1/sessions/{sid}{path}", headers=h)
            u = await http.request(method, f"/v1/sessions/{UNKNOWN}{path}", headers=h)
            assert r.status_code == u.status_code == 404, (path, r.text, u.text)
            assert r.text.replace(sid, UNKNOWN) == u.text, (path, r.text, u.text)
        r = await http.post("/v1/sessions", headers=h, json={"resume": {"session_id": sid, "last_seq": 0}})
        assert r.status_code == 404 and r.json()["error"]["code"] == "session_not_found", r.text
    # its own key resumes it on the other node, from the start of its log
    async with websockets.connect(f"{other.ws}?token={ALPHA}") as ws:
        await ws.send(json.dumps({"type": "start", "resume": {"session_id": sid, "last_seq": 0}}))
        first = json.loads(await ws.recv())
        assert first["type"] == "session.started" and first["session_id"] == sid, first
        await ws.send(json.dumps({"type": "stop"}))
        events = [json.loads(m) async for m in ws]
    assert events[-1]["type"] == "session.ended" and events[-1]["reason"] == "stop", events[-3:]
