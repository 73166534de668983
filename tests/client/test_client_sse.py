"""asrhub.client's HTTP+SSE event stream (httpx-sse) against a real HTTP server on loopback that sends what
a hub, a proxy or a balancer may send: `id:` lines (the client asks for what follows with Last-Event-ID),
`event:` names, comments, `retry:`, a data-less message, a `data:` split over lines and values with and
without the one optional space after the colon; and the answers that are not a stream (204, 404 while a
new session reaches Redis, 5xx, 4xx, an HTML page). The hub itself never sends most of these, so the
server here is a plain loopback socket whose bytes each test states."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import pytest

from asrhub.client import SessionEnded, SpeechStarted, SseClient
from asrhub.client.errors import ConnectionLost, HubRequestError
from asrhub.client.sse import SseConnection
from asrhub.core.events import Event, TranscriptPartial

STARTED = SpeechStarted(session_id="s", seq=1, offset_ms=120)
PARTIAL = TranscriptPartial(session_id="s", seq=2, utterance_id="u1", text="  two leading spaces", stable_text="",
                            start_ms=120, end_ms=900)
ENDED = SessionEnded(session_id="s", seq=3, reason="stop")


def sse_body() -> bytes:
    partial = PARTIAL.to_json()
    cut = partial.index(',"text"') + 1  # the two data lines join with a newline: JSON whitespace there
    head, tail = partial[:cut], partial[cut:]
    return ("retry: 1500\n"
            ": a comment, as a keep-alive\n\n"
            f"id: 1\nevent: speech.started\ndata: {json.dumps(STARTED.to_dict())}\n\n"
            "event: ping\ndata:\n\n"  # no data: not dispatched
            f"id:2\ndata:{head}\ndata:{tail}\n\n"  # no space after the colons; data over two lines
            f"id: 3\r\ndata: {json.dumps(ENDED.to_dict())}\r\n\r\n").encode()  # CRLF lines


@dataclass
class Answer:
    status: int
    body: bytes = b""
    content_type: str = "text/event-stream"


@dataclass
class Server:
    """Answers each GET with the next of `answers` (the last one again once they run out), and keeps each
    request's headers."""

    answers: list[Answer]
    requests: list[dict[str, str]] = field(default_factory=list)
    port: int = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = (await reader.readuntil(b"\r\n\r\n")).decode()
        lines = head.split("\r\n")
        self.requests.append({k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:] if ln)})
        a = self.answers[min(len(self.requests), len(self.answers)) - 1]
        reason = {200: "OK", 204: "No Content", 400: "Bad Request", 404: "Not Found", 503: "Unavailable"}[a.status]
        writer.write(f"HTTP/1.1 {a.status} {reason}\r\ncontent-type: {a.content_type}\r\n"
                     f"content-length: {len(a.body)}\r\nconnection: close\r\n\r\n".encode() + a.body)
        await writer.drain()
        writer.close()


@pytest.fixture
async def serve() -> AsyncIterator[Callable[..., asyncio.Future[tuple[Server, SseConnection]]]]:
    servers: list[asyncio.Server] = []
    conns: list[SseConnection] = []

    async def start(*answers: Answer) -> tuple[Server, SseConnection]:
        s = Server(list(answers))
        srv = await asyncio.start_server(s.handle, "127.0.0.1", 0)
        servers.append(srv)
        s.port = srv.sockets[0].getsockname()[1]
        conn = SseClient(f"http://127.0.0.1:{s.port}").connection()
        assert isinstance(conn, SseConnection)
        conn.events_url = "/v1/sessions/s/events"
        conns.append(conn)
        return s, conn

    yield start  # type: ignore[misc]
    for c in conns:
        await c.close()
    for srv in servers:
        srv.close()
        await srv.wait_closed()


async def read(conn: SseConnection) -> list[Event]:
    return [ev async for ev in conn.events()]


async def test_events_ids_and_the_spec_s_line_forms(serve: Callable[..., object]) -> None:
    server, conn = await serve(Answer(200, sse_body()), Answer(204))  # type: ignore[misc]
    events = await read(conn)
    assert events == [STARTED, PARTIAL, ENDED]
    assert isinstance(events[1], TranscriptPartial) and events[1].text == "  two leading spaces"
    assert conn.after == 3  # the last id: a stream opened again asks for what follows
    assert "last-event-id" not in server.requests[0]
    assert await read(conn) == []  # 204: the session ended and everything was delivered
    assert server.requests[1]["last-event-id"] == "3"


async def test_a_new_sessions_stream_answered_404_is_asked_again(serve: Callable[..., object]) -> None:
    """Behind a balancer, the first GET may reach a node before the session is in Redis."""
    server, conn = await serve(Answer(404, b'{"error": {"code": "session_not_found", "message": "no"}}',  # type: ignore[misc]
                                      "application/json"),
                               Answer(404, b'{"error": {"code": "session_not_found", "message": "no"}}',
                                      "application/json"),
                               Answer(200, sse_body()))
    conn.created = True
    assert await read(conn) == [STARTED, PARTIAL, ENDED]
    assert len(server.requests) == 3 and not conn.created


async def test_404_of_a_session_this_connection_did_not_create_is_final(serve: Callable[..., object]) -> None:
    server, conn = await serve(Answer(404, b'{"error": {"code": "session_not_found", "message": "no"}}',  # type: ignore[misc]
                                      "application/json"))
    with pytest.raises(HubRequestError) as exc:
        await read(conn)
    assert exc.value.code == "session_not_found" and exc.value.status == 404 and len(server.requests) == 1


@pytest.mark.parametrize("answer, raised, says", [
    (Answer(503, b'{"error": {"code": "unavailable", "message": "node lost"}}', "application/json"),
     ConnectionLost, "unavailable: node lost"),  # a node that cannot serve it now: the session resumes
    (Answer(400, b'{"error": {"code": "invalid_command", "message": "bad id"}}', "application/json"),
     HubRequestError, "invalid_command: bad id"),
    (Answer(200, b"<html>a proxy's login page</html>", "text/html"), ConnectionLost, "text/event-stream"),
])
async def test_answers_that_are_not_a_stream(serve: Callable[..., object], answer: Answer, raised: type,
                                             says: str) -> None:
    _, conn = await serve(answer)  # type: ignore[misc]
    with pytest.raises(raised) as exc:
        await read(conn)
    assert says in str(exc.value)
