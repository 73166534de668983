"""The takeover claim against a real redis-server (DESIGN §8 "Owner death → takeover"): of two nodes
claiming at once exactly one wins and `session.migrated` lands once at the next seq; no claim while the
old lease is there, after the session ended, or when the log moved on; the old owner's appends are
refused once the session is another node's; where the timeline goes on is read from the log."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from asrhub.cluster.append import LogAppender
from asrhub.cluster.takeover import Claimer, ClaimRefused, read_takeover
from asrhub.core.commands import StartSession
from asrhub.core.events import (
    Event,
    SessionEnded,
    SessionMigrated,
    SpeechStarted,
    TranscriptFinal,
    TranscriptPartial,
    parse_event,
)
from tests.cluster.redis_server import RedisServer


@pytest.fixture
async def client(redis_server: RedisServer) -> AsyncIterator[aioredis.Redis]:
    c = aioredis.Redis.from_url(redis_server.url, socket_timeout=1, socket_connect_timeout=1)
    yield c
    await c.aclose()


def numbered(events: list[Event]) -> list[Event]:
    for i, ev in enumerate(events, 1):
        ev.seq = i
    return events


async def a_session_of_node0(client: aioredis.Redis, sid: str = "s1") -> list[Event]:
    """node0's session: a final of u1 ending at 2000 ms, u2 open with a promise; node0's lease gone."""
    events = numbered([
        SpeechStarted(session_id=sid, offset_ms=300),
        TranscriptFinal(session_id=sid, utterance_id="u1", text="one", start_ms=300, end_ms=2000,
                        provider="p", latency_ms=5),
        SpeechStarted(session_id=sid, offset_ms=2600),
        TranscriptPartial(session_id=sid, utterance_id="u2", text="two three four", stable_text="two",
                          start_ms=2600, end_ms=3900),
    ])
    await client.hset(f"sess:{sid}", mapping={"owner": "node0", "last_seq": 0, "api_key": "k1", "transport": "sse",
                                               "start": StartSession(language="en").model_dump_json(exclude_none=True)})
    assert (await LogAppender(client, 1000).append(sid, 0, events, 60, writer="node0")).ok
    return events


async def test_one_of_two_claimants_wins(client: aioredis.Redis) -> None:
    await a_session_of_node0(client)
    point = await read_takeover(client, "s1", replay_audio_s=30)
    assert (point.last_seq, point.audio_from_ms, point.utterances, point.promised) == (4, 2000, 1, "two")
    assert point.start is not None and point.start.language == "en"
    assert (point.transport, point.api_key, point.ended) == ("sse", "k1", False)
    assert [e.seq for e in point.tail] == [1, 2, 3, 4]
    await client.xadd("in:s1", {"op": "audio", "conn": "x", "data": b"\0\0"})  # sent to the dead owner
    claimer = Claimer(client, 1000)
    results = await asyncio.gather(claimer.claim("s1", "node0", "node1", point, 60),
                                   claimer.claim("s1", "node0", "node2", point, 60))
    won = [r for r in results if isinstance(r, SessionMigrated)]
    assert len(won) == 1 and ClaimRefused.taken in results, results
    entries = await client.xrange("ev:s1")
    assert [e[0] for e in entries][-1] == b"0-5" and len(entries) == 5
    logged = parse_event(entries[-1][1][b"event"])
    assert isinstance(logged, SessionMigrated) and logged == won[0]
    assert (logged.from_node, logged.audio_from_ms) == ("node0", 2000)
    rec = await client.hgetall("sess:s1")
    assert rec[b"owner"] == logged.to_node.encode() and rec[b"last_seq"] == b"5"
    assert not await client.exists("in:s1")  # what the dead owner was sent is sent again by the client
    # the old owner comes back: its next append is refused, whatever seq it tries
    appender = LogAppender(client, 1000)
    late = [SpeechStarted(session_id="s1", seq=5, offset_ms=4000)]
    assert not (await appender.append("s1", 4, late, 60, writer="node0")).ok
    late = [SpeechStarted(session_id="s1", seq=6, offset_ms=4000)]
    refused = await appender.append("s1", 5, late, 60, writer="node0")
    assert not refused.ok and refused.last_seq == 5
    assert (await appender.append("s1", 5, late, 60, writer=logged.to_node)).ok


async def test_no_claim_while_the_lease_is_there_or_after_the_end(client: aioredis.Redis) -> None:
    await a_session_of_node0(client)
    claimer = Claimer(client, 1000)
    point = await read_takeover(client, "s1", replay_audio_s=30)
    await client.set("node:node0", "{}", px=5000)
    assert await claimer.claim("s1", "node0", "node1", point, 60) is ClaimRefused.owner_back
    await client.delete("node:node0")
    more = [SpeechStarted(session_id="s1", seq=5, offset_ms=5000)]
    assert (await LogAppender(client, 1000).append("s1", 4, more, 60, writer="node0")).ok
    assert await claimer.claim("s1", "node0", "node1", point, 60) is ClaimRefused.moved_on  # read again
    end = [SessionEnded(session_id="s1", seq=6, reason="stop")]
    assert (await LogAppender(client, 1000).append("s1", 5, end, 60, writer="node0")).ok
    point = await read_takeover(client, "s1", replay_audio_s=30)
    assert point.ended
    assert await claimer.claim("s1", "node0", "node1", point, 60) is ClaimRefused.ended
    assert await claimer.claim("gone", "node0", "node1", point, 60) is ClaimRefused.gone


async def test_audio_from_is_bounded_by_replay_audio_s(client: aioredis.Redis) -> None:
    await a_session_of_node0(client)
    point = await read_takeover(client, "s1", replay_audio_s=1)
    # heard up to 3900 ms, the last final ends at 2000: asked again from 2900 at most; the utterance's
    # start is not sent again, so its promise is not kept
    assert (point.audio_from_ms, point.promised) == (2900, "")


async def test_a_second_takeover_goes_on_from_the_first(client: aioredis.Redis) -> None:
    """node1 took node0's session over (from 2900 ms: replay_audio_s 1) and died before a final: node2
    goes on from there, with the utterance numbers after the last final (u1)."""
    await a_session_of_node0(client)
    first = await read_takeover(client, "s1", replay_audio_s=1)
    claimed = await Claimer(client, 1000).claim("s1", "node0", "node1", first, 60)
    assert isinstance(claimed, SessionMigrated) and claimed.audio_from_ms == 2900
    later = [SpeechStarted(session_id="s1", seq=6, offset_ms=3000),
             TranscriptPartial(session_id="s1", seq=7, utterance_id="u2", text="two", stable_text="",
                               start_ms=3000, end_ms=3500)]
    assert (await LogAppender(client, 1000).append("s1", 5, later, 60, writer="node1")).ok
    point = await read_takeover(client, "s1", replay_audio_s=30)
    assert (point.last_seq, point.audio_from_ms, point.utterances) == (7, 2900, 1)
    second = await Claimer(client, 1000).claim("s1", "node1", "node2", point, 60)
    assert isinstance(second, SessionMigrated) and (second.seq, second.from_node) == (8, "node1")
