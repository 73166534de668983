"""asrhub.client against a hub from before `resume.held_audio` (stop 28): such a hub refuses the unknown
field (`invalid_command`, "unknown field 'resume.held_audio'"), and the client ended the session there
(ResumeFailed). It now resumes again without the field, and keeps doing so for that session.

The hub is played by a loopback server answering each HTTP + SSE request as that hub did, byte for byte:
the start, an event stream that drops before `session.ended`, the resume refused for its field, the resume
without it, and the stream that brings the end. The requests it got are checked."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from asrhub.client import SessionEnded, SessionStarted, SseClient
from asrhub.core.events import AudioFormat, EffectiveConfig, EffectiveVad, EffectiveWakeword
from asrhub.core.events import SessionEnded as CoreSessionEnded
from asrhub.core.events import SessionStarted as CoreSessionStarted

REFUSAL = {"error": {"code": "invalid_command",
                     "message": "invalid StartSession body: unknown field 'resume.held_audio'"}}


CONFIG = EffectiveConfig(interim_results=True, word_timestamps=False,
                         vad=EffectiveVad(enabled=True, kind="webrtc", silence_ms=500, min_speech_ms=100,
                                          pre_roll_ms=200, max_utterance_s=30),
                         wakeword=EffectiveWakeword(enabled=False), record=False, hub_sample_rate=16000,
                         interim_interval_ms=300)


class OldHub:
    """Answers as a hub without `resume.held_audio`; `requests`: (method, path, headers, JSON body)."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str, dict[str, str], Any]] = []
        self.port = 0
        self.streams = 0

    async def start(self) -> asyncio.Server:
        server = await asyncio.start_server(self.handle, "127.0.0.1", 0)
        self.port = server.sockets[0].getsockname()[1]
        return server

    def answer(self, method: str, path: str, body: Any) -> tuple[int, str, bytes]:
        base = f"http://127.0.0.1:{self.port}/v1/sessions/s1"
        created = json.dumps({"session_id": "s1", "events_url": base + "/events", "audio_url": base + "/audio"})
        if method == "POST" and path == "/v1/sessions":
            resume = (body or {}).get("resume")
            if resume is None:
                return 201, "application/json", created.encode()
            if "held_audio" in resume:
                return 400, "application/json", json.dumps(REFUSAL).encode()
            return 200, "application/json", created.encode()
        if method == "GET" and path == "/v1/sessions/s1/events":
            self.streams += 1
            if self.streams == 1:  # the session's start, then the stream drops
                ev = CoreSessionStarted(session_id="s1", seq=1, provider="p", language="en",
                                        audio=AudioFormat(encoding="pcm_s16le", sample_rate=16000, channels=1),
                                        config=CONFIG)
            else:
                ev = CoreSessionEnded(session_id="s1", seq=2, reason="stop")
            return 200, "text/event-stream", f"id: {ev.seq}\nevent: {ev.type}\ndata: {ev.to_json()}\n\n".encode()
        return 404, "application/json", b'{"error": {"code": "not_found", "message": "no"}}'

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = (await reader.readuntil(b"\r\n\r\n")).decode()
        line, *fields = head.split("\r\n")
        method, path, _ = line.split(" ", 2)
        headers = {k.strip().lower(): v.strip() for k, _, v in (f.partition(":") for f in fields if f)}
        raw = await reader.readexactly(int(headers.get("content-length", "0")))
        body = json.loads(raw) if raw else None
        self.requests.append((method, path.split("?")[0], headers, body))
        status, ctype, out = self.answer(method, path.split("?")[0], body)
        writer.write(f"HTTP/1.1 {status} X\r\ncontent-type: {ctype}\r\ncontent-length: {len(out)}\r\n"
                     f"connection: close\r\n\r\n".encode() + out)
        await writer.drain()
        writer.close()


async def test_a_hub_without_held_audio_is_resumed_without_it() -> None:
    hub = OldHub()
    server = await hub.start()
    try:
        client = SseClient(f"http://127.0.0.1:{hub.port}", reconnect_delay_s=0.01, migration_wait_s=0.01)
        s = await client.session()
        async with asyncio.timeout(30):
            events = [ev async for ev in s]
        await s.close()
    finally:
        server.close()
        await server.wait_closed()
    assert [type(e) for e in events] == [SessionStarted, SessionEnded], events
    resumes = [body["resume"] for method, path, _, body in hub.requests
               if method == "POST" and path == "/v1/sessions" and body.get("resume")]
    assert resumes == [{"session_id": "s1", "last_seq": 1, "held_audio": True}, {"session_id": "s1", "last_seq": 1}]
    assert hub.requests[-1][2].get("last-event-id") == "1"  # the stream after the resume goes on after seq 1
    assert s.refused == [] and s.reconnects == 1
