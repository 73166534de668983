"""Admission across nodes (issue 13 item 7, DESIGN §8 "Admission"): an API key's session quota holds
across two real nodes (a third session is refused on either), and a slot is free again once a session
has ended."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
import websockets

from tests.cluster.nodes import START, Cluster

KEY = "quota-test-key-0123456789"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    keys = json.dumps([{"key": KEY, "name": "team-a", "max_sessions": 2}])
    c = Cluster(tmp_path_factory.mktemp("quota"), 2, env={"ASRHUB_SERVER__AUTH__API_KEYS": keys})
    yield c
    c.stop()


async def start(url: str) -> tuple[websockets.ClientConnection, dict[str, object]]:
    ws = await websockets.connect(url, additional_headers={"Authorization": f"Bearer {KEY}"})
    await ws.send(json.dumps(START))
    return ws, json.loads(await ws.recv())


async def test_key_quota_of_two_holds_across_two_nodes(cluster: Cluster) -> None:
    a, b = cluster.nodes
    ws1, ev1 = await start(a.ws)
    ws2, ev2 = await start(b.ws)
    assert ev1["type"] == ev2["type"] == "session.started", (ev1, ev2)
    for node in (a, b):  # each node alone has room (limits.max_sessions_per_key: 32); the key does not
        ws, ev = await start(node.ws)
        assert ev["type"] == "error" and ev["code"] == "too_many_sessions", ev
        assert "across the cluster" in str(ev["message"])
        await ws.close()
    assert cluster.redis.client().zcard("quota:team-a") == 2

    await ws1.send(json.dumps({"type": "stop"}))  # its slot is free once session.ended is logged
    async for msg in ws1:
        if json.loads(msg)["type"] == "session.ended":
            break
    await ws1.close()
    ws3, ev3 = await start(b.ws)  # (the slot was given back before session.ended reached the client)
    assert ev3["type"] == "session.started", ev3
    for ws in (ws2, ws3):
        await ws.close()
