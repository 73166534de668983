"""HTTP + SSE across a takeover: each audio POST stands alone, and behind a balancer one sent on the old
connection can reach the node that has just taken the session over (after its claim) before the client
has read `session.migrated`. The new owner put that audio at `audio_from_ms`, and the held audio the
client then sent again from `audio_from_ms` landed after it: audio twice, out of order (issue 21's
10-minute chaos run: 3 words of SSE talkers lost, a replayed final's opening garbled).

The start and resume replies carry the session's takeover `epoch` (the seq of its latest
`session.migrated`; absent: 0), and a POST that carries an older one (`?epoch=`) is refused 503
`node_lost`, never placed; asrhub.client then resumes and sends its held audio (that POST's audio in it)
again from `audio_from_ms`. Real nodes, real Redis."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from asrhub.client import SessionEnded, SessionMigrated, SseClient, TranscriptFinal
from tests.cluster.nodes import CHUNK, FIRST, SECOND, Cluster, midway, send, speech
from tests.support import HubProcess, clip, wer

AUDIO = {"encoding": "pcm_s16le", "sample_rate": 16000, "channels": 1}


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    c = Cluster(tmp_path, 3)
    yield c
    c.stop()  # (resumes a node a failed test left frozen)


async def resume(http: httpx.AsyncClient, node: HubProcess, sid: str, last_seq: int) -> dict[str, Any]:
    """An SSE resume (`held_audio`) on `node`; while it is refused for now (the dead owner's lease lives:
    `node_lost` with `retry_after_ms`), again when the refusal says. The 200 reply."""
    body = {"audio": AUDIO, "resume": {"session_id": sid, "last_seq": last_seq, "held_audio": True}}
    while True:
        r = await http.post(f"{node.http}/v1/sessions", json=body)
        if r.status_code != 503:
            assert r.status_code == 200, r.text
            return r.json()  # type: ignore[no-any-return]
        err = r.json()["error"]
        assert err["code"] == "node_lost" and err["retry_after_ms"] > 0, err
        await asyncio.sleep(err["retry_after_ms"] / 1000)  # as the refusal says


async def test_audio_from_before_a_takeover_is_refused_not_placed(cluster: Cluster) -> None:
    owner, heir, relay = cluster.nodes
    pcm = speech(FIRST)
    async with httpx.AsyncClient(timeout=httpx.Timeout(30, read=None)) as http:
        r = await http.post(f"{owner.http}/v1/sessions", json={"audio": AUDIO})
        assert r.status_code == 201, r.text
        sid = r.json()["session_id"]
        assert "epoch" not in r.json()  # never taken over: 0
        for i in range(0, CHUNK * 10, CHUNK):  # one second of it, on node0
            r = await http.post(f"{owner.http}/v1/sessions/{sid}/audio", params={"epoch": 0},
                                content=pcm[i:i + CHUNK])
            assert r.status_code == 202, r.text
        assert owner.proc is not None
        owner.proc.send_signal(signal.SIGKILL)
        owner.proc.wait()

        moved = await resume(http, heir, sid, 0)  # node1 takes the session over
        epoch, from_ms = moved["epoch"], moved["audio_from_ms"]
        log = cluster.log(sid)
        migrated = [e for e in log if e["type"] == "session.migrated"]
        assert len(migrated) == 1 and epoch == migrated[0]["seq"] and migrated[0]["to_node"] == "node1", moved
        chunk = pcm[CHUNK * 10:CHUNK * 11]  # 100 ms

        # sent before its client knew of the takeover (its epoch 0), reaching the new owner or a node that
        # bridges to it: refused, never placed
        for node in (heir, relay):
            r = await http.post(f"{node.http}/v1/sessions/{sid}/audio", params={"epoch": 0}, content=chunk)
            assert r.status_code == 503, (node.port, r.status_code, r.text)
            err = r.json()["error"]
            assert err["code"] == "node_lost" and "retry_after_ms" not in err, err
            for command in ("stop", "flush"):  # (a stop from before would end it ahead of the held audio)
                r = await http.post(f"{node.http}/v1/sessions/{sid}/{command}", params={"epoch": 0})
                assert r.status_code == 503 and r.json()["error"]["code"] == "node_lost", r.text
        again = await resume(http, relay, sid, 0)
        assert (again["audio_from_ms"], again["epoch"]) == (from_ms, epoch)  # the timeline is as it was

        # with the epoch of the resume's reply: placed, on the owner and through a bridge
        for node in (heir, relay):
            r = await http.post(f"{node.http}/v1/sessions/{sid}/audio", params={"epoch": epoch}, content=chunk)
            assert r.status_code == 202, r.text
        r = await http.post(f"{relay.http}/v1/sessions/{sid}/audio", content=chunk)  # no epoch: not checked
        assert r.status_code == 202, r.text
        after = await resume(http, heir, sid, 0)
        assert (after["audio_from_ms"], after["epoch"]) == (from_ms + 300, epoch), after
        assert [e for e in cluster.log(sid) if e["type"] == "session.migrated"] == migrated


async def test_sse_client_refused_resumes_and_sends_again(cluster: Cluster) -> None:
    """asrhub.client's SSE session: its owner freezes (its lease runs out; the client's event stream to it
    hangs, so the client hears nothing of a move), node1 takes the session over (a resume there), and the
    balancer sends the client's next audio POST to node1. Refused, the client closes its stream, resumes,
    and sends the held audio (the refused POST's in it) again from `audio_from_ms`: the open sentence's
    final has all its words. Before: the POST was placed on node1's new timeline ahead of the rest of the
    open sentence, and the client, never told, went on sending to a session it did not follow."""
    owner, heir, _ = cluster.nodes
    client = SseClient(owner.http, reconnect_delay_s=0.1, max_reconnects=10)
    mid = await midway(client)  # a final in, the second sentence's utterance open
    s = mid.session
    sid = s.session_id
    assert sid and owner.proc is not None
    owner.proc.send_signal(signal.SIGSTOP)  # frozen: its sockets stay open, its lease runs out
    client.base_url = heir.http  # where the client reconnects (a balancer would send it there)
    async with httpx.AsyncClient(timeout=httpx.Timeout(30, read=None)) as http:
        moved = await resume(http, heir, sid, s.last_seq)  # node1 takes the session over
    assert moved["epoch"] > s.last_seq
    s._conn.audio_url = f"{heir.http}/v1/sessions/{sid}/audio"  # the balancer's choice for the next POST

    async with asyncio.timeout(120):
        await send(s, mid.rest)
        await s.stop()
        await mid.reading
    events = mid.reader.events
    assert isinstance(events[-1], SessionEnded) and events[-1].reason == "stop", events[-1]
    seqs = [e.seq for e in events]
    assert seqs == list(range(1, len(seqs) + 1)), seqs
    migrated = [e for e in events if isinstance(e, SessionMigrated)]
    assert len(migrated) == 1 and migrated[0].to_node == "node1", migrated
    assert s.reconnects >= 1 and s.replayed_ms > 0 and s.gap_ms == 0, (s.reconnects, s.replayed_ms, s.gap_ms)
    finals = [e for e in events if isinstance(e, TranscriptFinal)]
    assert len(finals) == 2, [f.text for f in finals]
    assert wer([clip(SECOND).transcript], [finals[1].text]) < 0.25, finals[1].text  # both halves, in order
    await s.close()
    await client.aclose()
