"""The SSE writer (api.sse.EventStream) at the ASGI level: frames, keep-alive comments, the end of the
stream after session.ended, detach when the reader goes away, HEAD without a stream."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from asrhub.api.sse_stream import EventStream
from asrhub.core.channel import EventChannel
from asrhub.core.events import SessionEnded, SessionStats, SpeechStarted, TranscriptPartial


class FakeSession:
    def __init__(self) -> None:
        self.id = "s1"
        self.channel = EventChannel(self.id)
        self.ended = False


class FakeService:
    def __init__(self, session: FakeSession) -> None:
        self.session = session
        self.detached: list[str] = []

    def events(self, session_id: str, after_seq: int = 0) -> Any:
        return self.session.channel.subscribe(after_seq)

    def detach(self, session_id: str, attachment: int | None = None) -> None:
        self.detached.append(session_id)

    def attachment(self, session_id: str) -> int:
        return 1

    def is_live(self, session_id: str) -> bool:
        return not self.session.ended


class Sent(list[dict[str, Any]]):
    """What the stream sent; `until(pred)` waits (no sleeping) until the messages satisfy pred."""

    def __init__(self) -> None:
        super().__init__()
        self.changed = asyncio.Condition()

    async def add(self, message: dict[str, Any]) -> None:
        async with self.changed:
            self.append(message)
            self.changed.notify_all()

    async def until(self, pred: Any) -> None:
        async with self.changed:
            await asyncio.wait_for(self.changed.wait_for(lambda: pred(self)), 5)


def stream(method: str = "GET", ping_s: float = 15.0, after: int = 0) -> tuple[EventStream, FakeService, Any, Any]:
    session = FakeSession()
    service = FakeService(session)
    sent = Sent()
    gone = asyncio.Event()

    async def receive() -> dict[str, Any]:
        await gone.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        await sent.add(message)

    app = EventStream.local(service, session, after, ping_s=ping_s)  # type: ignore[arg-type]
    call = app({"type": "http", "method": method}, receive, send)
    return app, service, (call, sent, gone), session


def bodies(sent: list[dict[str, Any]]) -> bytes:
    return b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")


async def test_frames_then_the_stream_ends_after_session_ended() -> None:
    _, service, (call, sent, _), session = stream()
    task = asyncio.create_task(call)
    ch = session.channel
    ch.emit(SpeechStarted(session_id="", offset_ms=10))
    ch.emit(TranscriptPartial(session_id="", utterance_id="u1", text="hi\nthere", stable_text="", start_ms=0,
                              end_ms=5))
    await sent.until(lambda m: b"transcript.partial" in bodies(m))
    session.ended = True
    ch.emit(SessionEnded(session_id="", reason="stop", stats=SessionStats()))
    await asyncio.wait_for(task, 5)
    assert sent[0]["type"] == "http.response.start" and sent[0]["status"] == 200
    assert (b"content-type", b"text/event-stream; charset=utf-8") in sent[0]["headers"]
    assert sent[-1] == {"type": "http.response.body", "body": b"", "more_body": False}
    frames = bodies(sent).decode().split("\r\n\r\n")
    assert frames[-1] == ""
    parsed = []
    for frame in frames[:-1]:
        fields = dict(line.split(": ", 1) for line in frame.split("\r\n"))
        ev = json.loads(fields["data"])
        assert fields["id"] == str(ev["seq"]) and fields["event"] == ev["type"]
        parsed.append(ev)
    assert [e["type"] for e in parsed] == ["speech.started", "transcript.partial", "session.ended"]
    assert parsed[1]["text"] == "hi\nthere"  # a newline in a value stays inside the one data line
    assert service.detached == [] and ch.readers == 0


async def test_keep_alive_comments_while_idle() -> None:
    _, _, (call, sent, gone), session = stream(ping_s=0.05)
    task = asyncio.create_task(call)

    def comments(m: list[dict[str, Any]]) -> list[bytes]:
        return [x["body"] for x in m if x["type"] == "http.response.body" and x["body"].startswith(b": ping")]

    await sent.until(lambda m: len(comments(m)) >= 3)
    assert all(c.endswith(b"\r\n\r\n") for c in comments(sent))
    gone.set()
    await asyncio.wait_for(task, 5)


async def test_reader_gone_detaches_the_session() -> None:
    _, service, (call, sent, gone), session = stream()
    task = asyncio.create_task(call)
    session.channel.emit(SpeechStarted(session_id="", offset_ms=10))
    await sent.until(lambda m: b"speech.started" in bodies(m))
    assert session.channel.readers == 1
    gone.set()
    await asyncio.wait_for(task, 5)
    assert service.detached == ["s1"] and session.channel.readers == 0
    assert b"speech.started" in bodies(sent)


async def test_replay_after_last_event_id() -> None:
    _, _, (call, sent, _), session = stream(after=1)
    for i in range(3):
        session.channel.emit(SpeechStarted(session_id="", offset_ms=i))
    session.ended = True
    session.channel.emit(SessionEnded(session_id="", reason="stop", stats=SessionStats()))
    await asyncio.wait_for(call, 5)
    ids = [line for line in bodies(sent).decode().split("\r\n") if line.startswith("id: ")]
    assert ids == ["id: 2", "id: 3", "id: 4"]


async def test_head_answers_headers_only() -> None:
    _, service, (call, sent, _), session = stream(method="HEAD")
    await asyncio.wait_for(call, 5)
    assert [m["type"] for m in sent] == ["http.response.start", "http.response.body"]
    assert sent[-1]["body"] == b"" and not sent[-1]["more_body"]
    # a HEAD probe neither attached (the route answers it without resume) nor detaches the session
    assert service.detached == [] and session.channel.readers == 0
