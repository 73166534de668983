"""POST /v1/sessions (SSE) in a cluster answers a new session's id only once any node can find it.

Behind a balancer the POST and the first GET of the session's events (or its first audio POST) may reach
different nodes; the node that answers the GET learns of the session from Redis (`sess:{id}`). The owner
answered the POST before it had written that record, so a GET in between was 404 session_not_found (found
by the chaos run): every client but `asrhub.client` (which asks again) ended there, a browser's EventSource
among them. The owner's write is held back with `CLIENT PAUSE … WRITE` (reads go on), so before the fix the
GET certainly came first. A raw HTTP client (httpx), so that no retry hides the 404. Real nodes, real Redis.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.cluster.nodes import PCM, Cluster
from tests.support import FileWatch, until


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    c = Cluster(tmp_path, 2)
    yield c
    c.stop()


async def first_event(http: httpx.AsyncClient, url: str) -> dict[str, object]:
    """The first message of an SSE stream (its `data`), read as it comes."""
    async with http.stream("GET", url, headers={"Accept": "text/event-stream"}) as r:
        assert r.status_code == 200, (r.status_code, (await r.aread()).decode())
        async for line in r.aiter_lines():
            if line.startswith("data:"):
                return json.loads(line[len("data:"):])  # type: ignore[no-any-return]
    raise AssertionError(f"{url}: the stream ended without an event")


async def test_events_of_a_new_session_on_another_node_at_once(cluster: Cluster) -> None:
    owner, other = cluster.nodes
    start = {"audio": PCM.model_dump(exclude_none=True)}
    async with httpx.AsyncClient(timeout=30) as http:
        # the owner's write of sess:{id} waits for the pause (shorter than the nodes' Redis timeout, 1 s)
        cluster.redis.client().execute_command("CLIENT", "PAUSE", "700", "WRITE")
        r = await http.post(f"{owner.http}/v1/sessions", json=start)
        assert r.status_code == 201, r.text
        sid = r.json()["session_id"]
        # where a balancer may send the first GET: at once, no retry
        first = await first_event(http, f"{other.http}/v1/sessions/{sid}/events")
        assert first["type"] == "session.started" and first["session_id"] == sid, first
        assert cluster.owner(sid) == "node0"
        assert (await http.post(f"{other.http}/v1/sessions/{sid}/stop")).status_code == 202


async def test_redis_not_answering_the_post_answers_all_the_same(cluster: Cluster) -> None:
    """Redis paused for longer than the Redis timeout: the owner does not wait for it (local-only, DESIGN
    §8 "Redis down"); the session runs on its node and the wait's end is in the owner's log."""
    owner, _ = cluster.nodes
    start = {"audio": PCM.model_dump(exclude_none=True)}
    said = FileWatch(owner.log)
    redis = cluster.redis.client()
    async with httpx.AsyncClient(timeout=30) as http:
        redis.execute_command("CLIENT", "PAUSE", "20000", "WRITE")
        try:
            # well within the pause: a POST that waited for Redis would time out here
            r = await http.post(f"{owner.http}/v1/sessions", json=start, timeout=10)
            assert r.status_code == 201, r.text
            sid = r.json()["session_id"]
            # (or, on a node so slow that its lease beat found Redis away first, the node's own word)
            await until(lambda: any(w in owner.log.read_text() for w in (
                f"session {sid}: Redis unreachable", "runs local-only (degraded)")), said, timeout=20,
                        what="the owner logging that Redis did not answer")
            first = await first_event(http, f"{owner.http}/v1/sessions/{sid}/events")
            assert first["type"] == "session.started" and first["session_id"] == sid, first
        finally:
            redis.execute_command("CLIENT", "UNPAUSE")
