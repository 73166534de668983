"""The owner's event log against a real redis-server (DESIGN §8 "Event log"): events land as
`0-<seq>` in order and are committed to the channel only then; a log another writer continued fences
the channel; a log Redis lost, or Redis going away, turns the session local-only (ungated)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from asrhub.cluster.append import LogAppender
from asrhub.cluster.log import EventLog
from asrhub.core.channel import ChannelFenced, EventChannel
from asrhub.core.events import ErrorEvent, SessionEnded, SpeechStarted, parse_event
from tests.cluster.redis_server import RedisServer


@pytest.fixture
async def client(redis_server: RedisServer) -> AsyncIterator[aioredis.Redis]:
    c = aioredis.Redis.from_url(redis_server.url, socket_timeout=1, socket_connect_timeout=1)
    yield c
    await c.aclose()


class Outcome:
    def __init__(self) -> None:
        self.fenced: list[str] = []
        self.down = 0
        self.ended: list[str] = []

    async def on_ended(self, sid: str) -> None:
        self.ended.append(sid)


def writer(client: aioredis.Redis, ch: EventChannel, out: Outcome) -> EventLog:
    return EventLog(client, LogAppender(client, 1000), "nodeA", ch.session_id, ch, "", 60, 5,
                    out.fenced.append, lambda: setattr(out, "down", out.down + 1), out.on_ended)


async def committed(ch: EventChannel, seq: int) -> None:
    sub = ch.subscribe(seq - 1)
    await asyncio.wait_for(sub.__anext__(), 5)
    await sub.aclose()


async def test_events_are_logged_in_order_then_committed(client: aioredis.Redis) -> None:
    ch = EventChannel("s1", gated=True)
    out = Outcome()
    task = asyncio.create_task(writer(client, ch, out).run())
    for i in range(5):
        ch.emit(SpeechStarted(session_id="", offset_ms=i))
    await committed(ch, 5)
    entries = await client.xrange("ev:s1")
    assert [e[0] for e in entries] == [f"0-{i}".encode() for i in range(1, 6)]
    assert [parse_event(e[1][b"event"]).seq for e in entries] == [1, 2, 3, 4, 5]
    rec = await client.hgetall("sess:s1")
    assert rec[b"owner"] == b"nodeA" and rec[b"last_seq"] == b"5"
    ch.emit(SessionEnded(session_id="", reason="stop"))
    await asyncio.wait_for(task, 5)
    assert out.ended == ["s1"] and ch.committed == 6
    assert 0 < await client.ttl("ev:s1") <= 5  # the resume window after session.ended


async def test_a_log_continued_by_another_node_fences_the_owner(client: aioredis.Redis) -> None:
    ch = EventChannel("s2", gated=True)
    out = Outcome()
    task = asyncio.create_task(writer(client, ch, out).run())
    ch.emit(SpeechStarted(session_id="", offset_ms=0))
    await committed(ch, 1)
    # another node took the owner for lost and ended the session in the log at seq 2, 3
    appender = LogAppender(client, 1000)
    lost = [ErrorEvent(session_id="s2", seq=2, code="node_lost", message="gone", fatal=True),
            SessionEnded(session_id="s2", seq=3, reason="error")]
    assert (await appender.append("s2", 1, lost, 5)).ok
    assert not (await appender.append("s2", 1, lost, 5)).ok  # the same seq twice: refused
    reader = ch.subscribe(1)
    ch.emit(SpeechStarted(session_id="", offset_ms=1))  # the owner's own seq 2: refused
    await asyncio.wait_for(task, 5)
    assert out.fenced == ["s2"] and ch.fenced
    with pytest.raises(ChannelFenced):
        await asyncio.wait_for(reader.__anext__(), 5)
    assert [parse_event(e[1][b"event"]).type for e in await client.xrange("ev:s2")] == \
        ["speech.started", "error", "session.ended"]


async def test_redis_losing_the_log_or_going_away_makes_the_session_local(client: aioredis.Redis,
                                                                          redis_server: RedisServer) -> None:
    ch = EventChannel("s3", gated=True)
    out = Outcome()
    task = asyncio.create_task(writer(client, ch, out).run())
    ch.emit(SpeechStarted(session_id="", offset_ms=0))
    await committed(ch, 1)
    redis_server.restart()  # empty: the log is gone (and the pooled connection with it)
    ch.emit(SpeechStarted(session_id="", offset_ms=1))
    await asyncio.wait_for(task, 10)
    assert not ch.gated and not ch.fenced and out.fenced == []
    await committed(ch, 2)  # clients get it all the same

    ch2 = EventChannel("s4", gated=True)
    task2 = asyncio.create_task(writer(client, ch2, out).run())
    ch2.emit(SpeechStarted(session_id="", offset_ms=0))
    await committed(ch2, 1)
    downs = out.down
    redis_server.stop()
    ch2.emit(SpeechStarted(session_id="", offset_ms=1))
    await asyncio.wait_for(task2, 10)
    assert out.down == downs + 1 and not ch2.gated
    await committed(ch2, 2)
