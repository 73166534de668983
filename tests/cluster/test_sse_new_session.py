"""Found by the chaos run (tests/cluster/test_chaos.py): behind a balancer an SSE client's POST /v1/sessions
and its GET of the events may reach different nodes. The node that answers the GET learns of the session from
Redis (`sess:{id}`), which its owner writes just after it answered the POST: a GET in between was answered
404 session_not_found and `asrhub.client` ended the session at its start. The client now asks again, a few
times over ~3 s, for the events of a session it has just created. Real nodes, real Redis; the owner's write is
held back by `CLIENT PAUSE … WRITE` (reads go on), so the GET certainly comes first."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from asrhub.client import SessionStarted, SseClient, StartSession
from tests.cluster.nodes import PCM, Cluster


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    c = Cluster(tmp_path, 2)
    yield c
    c.stop()


async def test_events_of_a_new_session_read_on_another_node(cluster: Cluster) -> None:
    owner, other = cluster.nodes
    conn = SseClient(owner.http).connection()
    try:
        cluster.redis.client().execute_command("CLIENT", "PAUSE", "700", "WRITE")
        sid = await conn.open(StartSession(audio=PCM))
        assert sid and cluster.owner(sid) == ""  # not in Redis yet: the owner's write waits for the pause
        conn.events_url = f"{other.http}/v1/sessions/{sid}/events"  # where a balancer may send the GET
        first = await anext(aiter(conn.events()))
    finally:
        await conn.close()
    assert isinstance(first, SessionStarted) and first.session_id == sid, first
    assert cluster.owner(sid) == "node0"
