"""HTTP + SSE audio POSTs answered by two nodes go on the timeline in the order they were answered.

Found in the 24-talker chaos run at ca83e8e (/tmp/chaos4; docs/BENCHMARKS.md issue 21): every lost word
was an SSE talker's, and SSE talkers had 4-6x the words "decoded otherwise" of the other wires (223 against
33-54 of ~5 300 each), away from any kill. Each SSE POST stands alone and nginx spread them over the three
nodes (about 3 in 4 reached a node that only relays: 202 once the audio is in the owner's inbox in Redis);
the next POST reaching the owner itself was applied at once, before the owner's inbox reader had applied
the one before it (under load its XREAD comes back late): 100 ms of audio out of order, ~600 times per
session. The owner now applies what its inbox holds before a request of its own (`Inbox.catch_up`).

Deterministic: node0 (the owner) reaches Redis through a gate that holds back the answers to its reads of
the session's inbox, as a late event loop would; node1 relays. Half a second of silence through node1,
the owner's answer to a resume showing it was applied; then the gate holds; a sentence through node1
(202: in the inbox); 3 s of silence to node0. The gate is released once node0 has answered that POST (as
before the fix) or asks Redis for the inbox itself (the fix). The sentence's final must start where the
sentence was put, at 0.5 s, not after the silence (3.5 s: before the fix)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from tests.cluster.nodes import FIRST, Cluster
from tests.cluster.redis_gate import RedisGate
from tests.cluster.redis_server import RedisServer
from tests.support import clip, load_pcm16

RATE = 16000
START = {"audio": {"encoding": "pcm_s16le", "sample_rate": RATE, "channels": 1}}
OCTETS = {"content-type": "application/octet-stream"}


def silence(seconds: float) -> bytes:
    return np.zeros(int(RATE * seconds), dtype=np.int16).tobytes()


@pytest.fixture
def gated(tmp_path: Path) -> Iterator[tuple[Cluster, RedisGate]]:
    redis = RedisServer(tmp_path).start()
    gate = RedisGate(redis.port).start()
    try:
        # a read held past its socket timeout (bridge_block_ms + connect_timeout_s) would make node0 take Redis
        # for down (local-only): generous, so a loaded machine's slow POSTs stay within it
        c = Cluster(tmp_path, 2, redis=redis, redis_urls={0: gate.url}, env={"ASRHUB_CLUSTER__CONNECT_TIMEOUT_S": "10"})
    except BaseException:
        gate.stop()
        redis.stop()
        raise
    try:
        yield c, gate
    finally:
        c.stop()
        gate.stop()


async def events_until_ended(http: httpx.AsyncClient, url: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    async with http.stream("GET", url) as r:
        assert r.status_code == 200, r.status_code
        async for line in r.aiter_lines():
            if line.startswith("data:"):
                out.append(json.loads(line[5:]))
                if out[-1]["type"] == "session.ended":
                    return out
    raise AssertionError(f"the event stream ended without session.ended: {[e['type'] for e in out]}")


async def test_a_post_to_the_owner_goes_after_one_another_node_answered_before(
        gated: tuple[Cluster, RedisGate]) -> None:
    cluster, gate = gated
    owner, relay = cluster.nodes
    lead, gap = 0.5, 3.0
    async with httpx.AsyncClient(timeout=httpx.Timeout(60)) as http:
        r = await http.post(owner.http + "/v1/sessions", json=START)
        assert r.status_code == 201, r.text
        sid = r.json()["session_id"]
        assert cluster.owner(sid) == "node0"
        audio = f"/v1/sessions/{sid}/audio"

        r = await http.post(relay.http + audio, content=silence(lead), headers=OCTETS)
        assert r.status_code == 202, r.text
        # the owner's answer to a resume comes once its inbox has applied what was in it: its reader is live
        r = await http.post(owner.http + "/v1/sessions",
                            json={**START, "resume": {"session_id": sid, "last_seq": 0, "held_audio": True}})
        assert r.status_code == 200 and r.json()["audio_from_ms"] == lead * 1000, r.text

        gate.hold(f"in:{sid}")
        try:
            r = await http.post(relay.http + audio, content=load_pcm16(clip(FIRST).path).tobytes(), headers=OCTETS)
            assert r.status_code == 202, r.text  # in the owner's inbox
            to_owner = asyncio.create_task(http.post(owner.http + audio, content=silence(gap), headers=OCTETS))
            asked = asyncio.create_task(asyncio.to_thread(gate.asked.wait, 60))
            await asyncio.wait({to_owner, asked}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            gate.release()
            gate.asked.set()  # (the waiting thread returns)
        r = await to_owner
        assert r.status_code == 202, r.text
        await asked
        r = await http.post(owner.http + f"/v1/sessions/{sid}/stop")
        assert r.status_code == 202, r.text
        events = await events_until_ended(http, owner.http + f"/v1/sessions/{sid}/events")

    finals = [e for e in events if e["type"] == "transcript.final"]
    assert finals and "thoughts" in finals[0]["text"].lower(), finals
    # the sentence went on the timeline at 0.5 s, before the silence the owner took after it; out of order,
    # it starts after that silence (>= 3.5 s)
    assert finals[0]["start_ms"] < (lead + gap / 2) * 1000, finals
