"""When the owner of a session dies and takeover is off (`cluster.takeover: false`; issue 13 items 4-6,
DESIGN §8 "Owner death", "Redis down"; the takeover itself: test_takeover.py): a
client bridged on another node gets every event the owner logged, then `error{node_lost}` and
`session.ended` within the lease + 1 s; an owner that was only frozen finds itself fenced out and ends
its copy, and no client ever gets a seq twice; Redis restarting does not touch running sessions.
Each test has its own two real nodes (it kills one) on its own real redis-server."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.cluster.nodes import (
    FIRST,
    SECOND,
    Cluster,
    WsClient,
    assert_ended_lost,
    assert_gapless,
    bridged_mid_utterance,
    finals,
    metric,
    moved_after_a_final,
    speech,
)
from tests.support import FileWatch, HubProcess, clip, normalise, until, wer


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    c = Cluster(tmp_path, 2, env={"ASRHUB_CLUSTER__TAKEOVER": "false"})
    yield c
    c.stop()  # (resumes a node a failed test left frozen)


async def test_kill_9_of_the_owner(cluster: Cluster) -> None:
    c = await bridged_mid_utterance(cluster)
    assert cluster.owner(c.session_id) == "node0"
    assert cluster.nodes[0].proc is not None
    killed = time.monotonic()
    cluster.nodes[0].proc.send_signal(signal.SIGKILL)
    await c.rest(timeout=30)
    took = time.monotonic() - killed
    assert took <= cluster.lease_ms / 1000 + 1.0, f"node_lost after {took:.2f} s"
    assert_gapless(c.events)
    assert_ended_lost(c.events)
    logged = cluster.log(c.session_id)
    assert [e["seq"] for e in logged] == [e["seq"] for e in c.events]  # every logged event, nothing else
    assert logged[:-2] == c.events[:-2]
    assert metric(cluster.nodes[1], "asrhub_cluster_sessions_lost_total") == 1.0


async def test_frozen_owner_is_fenced_out(cluster: Cluster) -> None:
    """SIGSTOP of the owner for longer than its lease, then SIGCONT: the client that moved to node1
    gets node_lost; the frozen owner's own connection gets no seq beyond what was logged, and is closed
    (1012: resume) when the owner finds its log refused."""
    old = WsClient()
    await old.connect(cluster.nodes[0])
    await old.send_audio(speech(FIRST))
    await old.recv_until(lambda e: e["type"] == "transcript.final")
    proc = cluster.nodes[0].proc
    assert proc is not None
    proc.send_signal(signal.SIGSTOP)
    try:
        moved = WsClient()
        moved.session_id, moved.events = old.session_id, list(old.events)
        stopped = time.monotonic()
        await moved.resume_past_refusals(cluster.nodes[1], cluster.lease_ms)  # (refused while the lease lives)
        await moved.rest(timeout=30)
        assert time.monotonic() - stopped <= cluster.lease_ms / 1000 + 1.5
        assert_ended_lost(moved.events)
        assert_gapless(moved.events)
    finally:
        proc.send_signal(signal.SIGCONT)
    # the owner runs again: audio on its old connection makes events it can no longer log
    await old.send_audio(speech(SECOND))
    while await old.recv(30, strict=False) is not None:
        pass
    assert old.close_code == 1012, old.close_code
    by_seq = {e["seq"]: e for e in moved.events}
    for ev in old.events:  # one seq, one event: whatever both clients got is the same event
        assert by_seq[ev["seq"]] == ev, (ev, by_seq.get(ev["seq"]))
    assert max(e["seq"] for e in old.events) < moved.events[-2]["seq"]
    assert cluster.log(old.session_id)[-1]["type"] == "session.ended"
    assert metric(cluster.nodes[0], "asrhub_cluster_sessions_fenced_total") == 1.0


async def cluster_state(node: HubProcess, want: str) -> None:
    """Wait for the node's /readyz to report `cluster: want`: asked at once, then after each line of the
    node's log (the node logs each change of its link: "Redis unreachable" / "answers again")."""
    async with httpx.AsyncClient() as http:
        async def reported() -> httpx.Response | None:
            r = await http.get(node.http + "/readyz")
            return r if r.json().get("cluster") == want else None

        r = await until(reported, FileWatch(node.log, own=("GET /readyz",)), timeout=20,
                        what=f"{node.http} reporting cluster {want}")
        assert r.status_code == 200  # degraded still serves (local-only)


async def test_redis_down_leaves_sessions_alone_and_heals(cluster: Cluster) -> None:
    c = WsClient()
    await c.connect(cluster.nodes[0])
    await c.send_audio(speech(FIRST))
    await c.recv_until(lambda e: e["type"] == "transcript.final")
    cluster.redis.stop()
    await cluster_state(cluster.nodes[0], "degraded")
    # a new session while Redis is down: local, and fine
    alone = WsClient()
    await alone.connect(cluster.nodes[1])
    await alone.send_audio(speech(SECOND))
    await alone.stop()
    await alone.rest()
    assert len(finals(alone.events)) == 1 and wer([clip(SECOND).transcript], finals(alone.events)) < 0.25
    cluster.redis.start()  # empty: no persistence
    await c.send_audio(speech(SECOND))  # the running session never noticed
    await c.stop()
    await c.rest()
    assert_gapless(c.events)
    assert c.events[-1]["reason"] == "stop"
    refs = [clip(FIRST).transcript, clip(SECOND).transcript]
    assert len(finals(c.events)) == 2 and wer(refs, finals(c.events)) < 0.25, finals(c.events)

    # healed: node0's lease is back, and a new session of node0 resumes on node1 again
    await cluster_state(cluster.nodes[0], "ok")
    d = await moved_after_a_final(cluster)
    await d.stop()
    await d.rest()
    assert_gapless(d.events)
    assert [normalise(t) for t in finals(d.events)] == [normalise(finals(c.events)[0])]
