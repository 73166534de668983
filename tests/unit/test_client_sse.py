"""The client's SSE parser (asrhub.client.sse, on httpx-sse) against event streams written byte for byte
by a loopback server: `id:` is kept (the seq a stream opened again asks after), `event:` and comments do
not disturb the data, a multi-line `data:` is one event, only the one space after a colon is dropped, and
a 204 or an error answer is told apart from a stream."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest

from asrhub.client.errors import ConnectionLost, HubRequestError
from asrhub.client.events import SessionEnded, SpeechStarted
from asrhub.client.sse import SseClient, SseConnection
from asrhub.core.events import SpeechStarted as CoreSpeechStarted


class Answer:
    """One canned HTTP answer per request on a real loopback socket; the request heads it got."""

    def __init__(self, status: int, body: str | bytes = b"", ctype: str = "text/event-stream") -> None:
        self.status, self.ctype = status, ctype
        self.body = body.encode() if isinstance(body, str) else body
        self.heads: list[dict[str, str]] = []

    async def __call__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = (await reader.readuntil(b"\r\n\r\n")).decode()
        self.heads.append({k.strip().lower(): v.strip() for k, _, v in
                           (line.partition(":") for line in head.split("\r\n")[1:] if line)})
        writer.write(f"HTTP/1.1 {self.status} X\r\ncontent-type: {self.ctype}\r\n".encode()
                     + (f"content-length: {len(self.body)}\r\n" if self.status != 204 else "").encode()
                     + b"connection: close\r\n\r\n" + (self.body if self.status != 204 else b""))
        await writer.drain()
        writer.close()


@contextlib.asynccontextmanager
async def connection(answer: Answer) -> AsyncIterator[SseConnection]:
    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    conn = SseConnection(SseClient(f"http://127.0.0.1:{port}"))
    conn.session_id = "s1"
    conn.events_url = "/v1/sessions/s1/events"
    try:
        yield conn
    finally:
        await conn.close()
        server.close()
        await server.wait_closed()


async def events(conn: SseConnection) -> list[Any]:
    return [ev async for ev in conn.events()]


def started(seq: int, offset_ms: int) -> str:
    return CoreSpeechStarted(session_id="s1", seq=seq, offset_ms=offset_ms).to_json()


ENDED = '{"type": "session.ended", "session_id": "s1", "seq": 3, "reason": "stop"}'


async def test_id_event_comments_and_multi_line_data() -> None:
    body = (": ping - keep-alive comment\r\n\r\n"
            f"id: 1\r\nevent: speech.started\r\ndata: {started(1, 10)}\r\n\r\n"
            f"id:2\nevent:speech.started\ndata:{started(2, 20)}\n\n"       # no space after the colons
            'id: 3\nevent: session.ended\ndata: {"type": "session.ended",\ndata:  "session_id": "s1",\n'
            'data: "seq": 3, "reason": "stop"}\n\n')                          # one event over three lines
    answer = Answer(200, body)
    async with connection(answer) as conn:
        got = await events(conn)
    assert [type(e) for e in got] == [SpeechStarted, SpeechStarted, SessionEnded]
    assert [e.seq for e in got] == [1, 2, 3] and [e.offset_ms for e in got[:2]] == [10, 20]
    assert conn.after == 3  # the last id: a stream opened again on this connection asks after it
    assert answer.heads[0]["accept"] == "text/event-stream"
    assert "last-event-id" not in answer.heads[0]


async def test_last_event_id_is_sent_when_resuming() -> None:
    answer = Answer(200, f"id: 3\ndata: {ENDED}\n\n")
    async with connection(answer) as conn:
        conn.after = 2
        got = await events(conn)
    assert [e.seq for e in got] == [3]
    assert answer.heads[0]["last-event-id"] == "2"


async def test_only_one_leading_space_is_dropped() -> None:
    """`data:  x` is the value ` x` (SSE §9.2.6): JSON after two spaces still parses; a non-JSON value
    keeps its second space (the old parser stripped every leading space)."""
    async with connection(Answer(200, f"data:  {ENDED}\n\n")) as conn:
        assert [type(e) for e in await events(conn)] == [SessionEnded]
    async with connection(Answer(200, "data:  not json\n\n")) as conn:
        with pytest.raises(ValueError, match="Expecting value: line 1 column 2"):  # column 2: the kept space
            await events(conn)


async def test_a_message_with_no_data_is_not_an_event() -> None:
    body = f"event: speech.started\nid: 9\n\nretry: 1000\n\nid: 3\ndata: {ENDED}\n\n"
    async with connection(Answer(200, body)) as conn:
        got = await events(conn)
    assert [e.seq for e in got] == [3]


async def test_204_ends_the_stream_with_no_events() -> None:
    async with connection(Answer(204)) as conn:
        assert await events(conn) == []


async def test_an_error_answer_is_a_hub_request_error() -> None:
    body = '{"error": {"code": "session_not_found", "message": "no session s1"}}'
    async with connection(Answer(404, body, "application/json")) as conn:
        with pytest.raises(HubRequestError) as e:
            await events(conn)
    assert e.value.code == "session_not_found" and e.value.status == 404


async def test_a_page_that_is_not_an_event_stream_is_a_lost_connection() -> None:
    async with connection(Answer(200, "<html>", "text/html")) as conn:
        with pytest.raises(ConnectionLost, match="event stream"):
            await events(conn)
