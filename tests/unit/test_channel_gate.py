"""The channel of a session logged to a cluster (DESIGN §8): clients see only what the log has
committed; the log is a reader that clients do not count (partials it took are not coalesced);
fencing stops clients at the committed seq; ungating gives them everything."""

from __future__ import annotations

import asyncio

import pytest

from asrhub.core.channel import ChannelFenced, ChannelOverflow, EventChannel
from asrhub.core.events import SpeechStarted, TranscriptPartial


def partial(text: str) -> TranscriptPartial:
    return TranscriptPartial(session_id="", utterance_id="u1", text=text, stable_text="", start_ms=0, end_ms=1)


async def take(it: object, n: int) -> list[int]:
    out = []
    for _ in range(n):
        ev = await asyncio.wait_for(it.__anext__(), 1)  # type: ignore[attr-defined]
        out.append(ev.seq)
    return out


async def test_clients_see_only_committed_events() -> None:
    ch = EventChannel("s", gated=True)
    for i in range(3):
        ch.emit(SpeechStarted(session_id="", offset_ms=i))
    client = ch.subscribe(0)
    pending = asyncio.ensure_future(client.__anext__())
    batch = await ch.log_batch(0)
    assert [e.seq for e in batch] == [1, 2, 3]
    assert ch.visible_seq == 0 and not pending.done()  # nothing committed yet: a client is shown nothing
    ch.commit(2)
    assert (await asyncio.wait_for(pending, 1)).seq == 1
    assert await take(client, 1) == [2]
    nxt = asyncio.ensure_future(client.__anext__())
    assert ch.visible_seq == 2 and not nxt.done()  # seq 3 is the log's, not yet the client's
    ch.commit(3)
    assert (await asyncio.wait_for(nxt, 1)).seq == 3
    await client.aclose()


async def test_a_partial_the_log_took_is_not_coalesced() -> None:
    ch = EventChannel("s", gated=True)
    ch.emit(partial("a"))
    assert [e.text for e in await ch.log_batch(0)] == ["a"]  # type: ignore[attr-defined]
    second = ch.emit(partial("a b"))
    assert second.seq == 2  # a new seq: seq 1 is in the log as it was
    ch.emit(partial("a b c"))  # not taken by anyone yet: coalesced into seq 2
    assert ch.last_seq == 2 and [e.text for e in await ch.log_batch(1)] == ["a b c"]  # type: ignore[attr-defined]


async def test_fenced_clients_stop_at_the_committed_seq() -> None:
    ch = EventChannel("s", gated=True)
    for i in range(3):
        ch.emit(SpeechStarted(session_id="", offset_ms=i))
    ch.commit(1)
    client = ch.subscribe(0)
    assert await take(client, 1) == [1]
    ch.fence()
    with pytest.raises(ChannelFenced):
        await asyncio.wait_for(client.__anext__(), 1)


async def test_ungated_clients_get_everything() -> None:
    ch = EventChannel("s", gated=True)
    for i in range(3):
        ch.emit(SpeechStarted(session_id="", offset_ms=i))
    client = ch.subscribe(0)
    ch.ungate()
    assert await take(client, 3) == [1, 2, 3]
    await client.aclose()


async def test_a_remote_reader_counts_for_the_not_reading_cut_off() -> None:
    def full(delivered: int) -> EventChannel:
        ch = EventChannel("s", max_events=64, gated=True)
        ch.remote_readers = 1  # a client attached through another node
        for i in range(64):
            ch.emit(SpeechStarted(session_id="", offset_ms=i))
        ch.mark_delivered(delivered)
        return ch

    full(10).emit(SpeechStarted(session_id="", offset_ms=99))  # drops seq 1: the remote client has it
    with pytest.raises(ChannelOverflow, match="not read"):
        full(0).emit(SpeechStarted(session_id="", offset_ms=99))  # drops seq 1, which it lacks
