"""StreamProgress (api/sse_stream.py): a POST that put events in a session's channel waits, on the event
stream's own progress, until an open stream has sent them; at once when no stream is open, and no longer
than its bound when the stream does not get there."""

from __future__ import annotations

import asyncio

from asrhub.api.sse_stream import StreamProgress


async def test_no_open_stream_is_no_wait() -> None:
    progress = StreamProgress()
    assert await progress.until_sent("s", 5, timeout_s=60)


async def test_the_wait_ends_when_the_stream_has_sent_the_seq() -> None:
    progress = StreamProgress()
    progress.opened("s")
    progress.sent("s", 2)
    waiter = asyncio.create_task(progress.until_sent("s", 4, timeout_s=60))
    loop = asyncio.get_running_loop()
    loop.call_soon(progress.sent, "s", 3)   # not yet
    loop.call_soon(progress.sent, "other", 9)  # another session's stream
    loop.call_soon(progress.sent, "s", 4)
    assert await asyncio.wait_for(waiter, 10) is True


async def test_a_stream_that_closes_ends_the_wait() -> None:
    progress = StreamProgress()
    progress.opened("s")
    waiter = asyncio.create_task(progress.until_sent("s", 1, timeout_s=60))
    asyncio.get_running_loop().call_soon(progress.closed, "s")
    assert await asyncio.wait_for(waiter, 10) is True
    assert await progress.until_sent("s", 1, timeout_s=60)  # nothing open any more


async def test_two_streams_one_that_sent_is_enough_and_the_bound_holds() -> None:
    progress = StreamProgress()
    progress.opened("s")
    progress.opened("s")
    progress.sent("s", 7)
    assert await progress.until_sent("s", 7, timeout_s=60)
    assert await progress.until_sent("s", 8, timeout_s=0.05) is False  # a stream that does not get there
    progress.closed("s")
    assert await progress.until_sent("s", 7, timeout_s=60)  # the other is still open, and has sent 7
