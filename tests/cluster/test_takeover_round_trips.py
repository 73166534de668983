"""Kill → `session.migrated` (issue 21's lease + 1 s target): what a live node asks Redis between a resume
that reaches it after the dead owner's lease is gone and its answer. Every round trip there is paid on a
node that has just taken several sessions over (the 10-minute chaos run: 0.3-0.5 s stalls), so the
resume takes the session over at once and serves its client from the session it now holds. Counted with
Redis `MONITOR` (tests/cluster/redis_monitor.py); the lease's end is waited for as Redis announces it.
Real nodes, real Redis."""

from __future__ import annotations

import asyncio
import json
import signal
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from asrhub.client import SessionEnded, SessionMigrated, SessionStarted, TranscriptFinal
from tests.cluster.nodes import CHUNK, FIRST, SECOND, Cluster, midway, send, speech
from tests.cluster.redis_monitor import Command, Monitor, expiry_of, renewed_in_order
from tests.cluster.test_takeover import connect, point_at
from tests.support import clip, wer

AUDIO = {"encoding": "pcm_s16le", "sample_rate": 16000, "channels": 1}


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    c = Cluster(tmp_path, 2)
    yield c
    c.stop()


def _claim_at(commands: list[Command], sid: str) -> int:
    """Where the claim script ran (EVALSHA naming the session's record and the dead owner's lease)."""
    at = [i for i, c in enumerate(commands) if c.name in ("EVALSHA", "EVAL") and c.on(f"sess:{sid}")
          and c.on("node:node0")]  # (its keys: the record, the log, the old lease, the inbox)
    assert at, [c.words[:3] for c in commands]
    return at[-1]  # (a first EVALSHA of a script new to this Redis is refused NOSCRIPT, loaded and run again)


def _asked(commands: list[Command], sid: str) -> list[tuple[str, ...]]:
    """The commands a node sent (not a script's own) about the session, a reply list or the dead owner."""
    keys = (f"sess:{sid}", f"ev:{sid}", f"in:{sid}", "node:node0")
    return [c.words[:2] for c in commands if c.client_type != "lua"
            and (any(c.on(k) for k in keys) or any(w.startswith("re:") for w in c.words[1:]))]


async def _sse_session_of_a_dead_owner(cluster: Cluster, http: httpx.AsyncClient) -> tuple[str, int]:
    """An SSE session of node0 with a second of audio, node0 killed and its lease expired (a lease after
    node1 reached Redis: `renewed_in_order`). Its id and last seq."""
    owner = cluster.nodes[0]
    r = await http.post(f"{owner.http}/v1/sessions", json={"audio": AUDIO})
    assert r.status_code == 201, r.text
    sid = r.json()["session_id"]
    pcm = speech(FIRST)
    for i in range(0, CHUNK * 10, CHUNK):
        r = await http.post(f"{owner.http}/v1/sessions/{sid}/audio", params={"epoch": 0}, content=pcm[i:i + CHUNK])
        assert r.status_code == 202, r.text
    assert owner.proc is not None
    await asyncio.to_thread(renewed_in_order, cluster.redis, "node:node1", "node:node0")
    with expiry_of(cluster.redis, "node:node0") as expired:
        owner.proc.send_signal(signal.SIGKILL)
        owner.proc.wait()
        assert await asyncio.to_thread(expired.wait, 30), "node0's lease never expired"
    return sid, len(cluster.log(sid))


async def test_sse_resume_after_the_lease_takes_over_at_once(cluster: Cluster) -> None:
    """An HTTP + SSE resume (`held_audio`) reaching node1 after node0's lease is gone: node1 claims the
    session before anything else, without a `mark` to the dead owner's inbox and the wait for its answer
    (and the lease read again), and answers from the session it now holds, without a `mark` round
    through its own inbox. Before: PTTL, XADD mark (to node0), BLPOP, PTTL, ... the claim, then XADD
    mark (to node1) and BLPOP."""
    async with httpx.AsyncClient(timeout=httpx.Timeout(30, read=None)) as http:
        sid, last = await _sse_session_of_a_dead_owner(cluster, http)
        mon = Monitor(cluster.redis).start()
        body = {"audio": AUDIO, "resume": {"session_id": sid, "last_seq": last, "held_audio": True}}
        r = await http.post(f"{cluster.nodes[1].http}/v1/sessions", json=body)
        commands = mon.until_here()
        assert r.status_code == 200, r.text
        reply = r.json()

        migrated = [e for e in cluster.log(sid) if e["type"] == "session.migrated"]
        assert len(migrated) == 1 and migrated[0]["to_node"] == "node1", migrated
        assert (reply["audio_from_ms"], reply["epoch"]) == (migrated[0]["audio_from_ms"], migrated[0]["seq"]), reply
        claim = _claim_at(commands, sid)
        before, after = _asked(commands[:claim], sid), _asked(commands[claim + 1:], sid)
        assert not [w for w in before if w[0] in ("XADD", "BLPOP", "PTTL")], before
        assert not [w for w in after if w[0] in ("XADD", "BLPOP") and w[1] != f"ev:{sid}"], after

        # the session goes on here: held audio with the reply's epoch is taken
        r = await http.post(f"{cluster.nodes[1].http}/v1/sessions/{sid}/audio", params={"epoch": reply["epoch"]},
                            content=speech(FIRST)[:CHUNK])
        assert r.status_code == 202, r.text


def _inbox_writes_to(commands: list[Command], sid: str, node: str) -> list[tuple[str, ...]]:
    """The messages written to the session's inbox `in:{id}` for `node` (an XADD's `to` field), op first."""
    out = []
    for c in commands:
        if c.name != "XADD" or not c.on(f"in:{sid}") or "*" not in c.words:
            continue
        pairs = c.words[c.words.index("*") + 1:]
        fields = dict(zip(pairs[::2], pairs[1::2], strict=False))
        if fields.get("to") == node:
            out.append((fields.get("op", ""), fields.get("conn", "")))
    return out


def _log_reads(commands: list[Command], sid: str) -> list[tuple[str, ...]]:
    return [c.words for c in commands if c.name == "XREAD" and c.on(f"ev:{sid}")]


@pytest.mark.parametrize("transport", ["websocket", "socketio", "grpc"])
async def test_a_session_taken_over_is_served_here_not_bridged(cluster: Cluster, transport: str) -> None:
    """asrhub.client's session on node0, killed mid-utterance; the client resumes on node1, which takes
    the session over. From the claim on, node1 serves the client from the session it holds: no `attach`
    through its own inbox, no events read back from the log, and the held audio sent again goes to the
    session directly (no `audio` through the inbox). The client has `session.migrated`, the
    `session.started {migrated}` and the open utterance's final, decoded again. Before: node1 bridged the
    client to itself (XADD attach and every 100 ms of audio to `in:{id}`, to node1; XREAD `ev:{id}`)."""
    owner, heir = cluster.nodes
    client = connect(transport, owner)
    mid = await midway(client)
    s = mid.session
    sid = s.session_id or ""
    point_at(client, heir)
    mon = Monitor(cluster.redis).start()
    assert owner.proc is not None
    owner.proc.send_signal(signal.SIGKILL)
    async with asyncio.timeout(90):
        await send(s, mid.rest)
        await s.stop()
        await mid.reading
    commands = mon.until_here()
    events = mid.reader.events
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert isinstance(events[-1], SessionEnded) and events[-1].reason == "stop", events[-1]
    m = [e for e in events if isinstance(e, SessionMigrated)]
    assert len(m) == 1 and m[0].to_node == "node1", m
    started = [e for e in events if isinstance(e, SessionStarted) and e.migrated]
    assert len(started) == 1 and started[0].seq == m[0].seq + 1, started
    finals = [e for e in events if isinstance(e, TranscriptFinal)]
    assert [f.utterance_id for f in finals] == ["u1", "u2"] and s.replayed_ms > 0, (finals, s.replayed_ms)
    assert wer([clip(SECOND).transcript], [finals[1].text]) < 0.25, finals[1].text

    after = commands[_claim_at(commands, sid) + 1:]
    assert _inbox_writes_to(after, sid, "node1") == [], _inbox_writes_to(after, sid, "node1")[:5]
    assert _log_reads(after, sid) == [], _log_reads(after, sid)[:3]
    await s.close()
    await client.aclose()


async def test_an_event_stream_of_a_session_taken_over_is_served_here(cluster: Cluster) -> None:
    """HTTP + SSE: an event stream (Last-Event-ID, as EventSource reconnects) of node0's session reaching
    node1 after node0's lease is gone: node1 takes the session over and streams it from the session it
    holds (no `attach` through its own inbox, no XREAD of the log). Before: bridged to itself."""
    async with httpx.AsyncClient(timeout=httpx.Timeout(30, read=None)) as http:
        sid, last = await _sse_session_of_a_dead_owner(cluster, http)
        mon = Monitor(cluster.redis).start()
        got: list[dict[str, object]] = []
        async with http.stream("GET", f"{cluster.nodes[1].http}/v1/sessions/{sid}/events",
                               headers={"Last-Event-ID": str(last)}) as r:
            assert r.status_code == 200, await r.aread()
            async for line in r.aiter_lines():
                if line.startswith("data:"):
                    got.append(json.loads(line[5:]))
                if got and got[-1]["type"] == "session.started":
                    break
        commands = mon.until_here()
    assert [(e["type"], e["seq"]) for e in got] == [("session.migrated", last + 1), ("session.started", last + 2)], got
    assert got[1]["migrated"] is True, got[1]
    after = commands[_claim_at(commands, sid) + 1:]
    assert _inbox_writes_to(after, sid, "node1") == [], _inbox_writes_to(after, sid, "node1")
    assert _log_reads(after, sid) == [], _log_reads(after, sid)
