"""An HTTP + SSE resume whose reply carries no `audio_from_ms` (the hub answers so when the session's owner
did not answer in time, e.g. during a Redis primary failover) does not hold the session's audio back: the
client used to wait start_timeout_s (30 s) for an answer that had already come, sent nothing meanwhile, and
the hub ended the session `idle` (found by the 24-talker chaos bench, during its Redis failover). A real hub
behind tests.client.test_sse_audio_retry's relay, which here cuts the event stream once, mid-sentence, and
takes `audio_from_ms` out of the resume's reply."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from aiohttp import web

from asrhub.client import SessionEnded, TranscriptFinal
from tests.client.test_sse_audio_retry import HOP, BadGateway, session_through
from tests.support import HubProcess, clip, load_pcm16


class Unanswered(BadGateway):
    """At the `cut_at`-th audio POST the open event stream is cut (the client resumes); resume replies lose
    their `audio_from_ms`."""

    def __init__(self, target: str, cut_at: int) -> None:
        super().__init__(target, fail_at=0)
        self.cut_at = cut_at
        self.stream: asyncio.Task[Any] | None = None
        self.cut = 0
        self.unanswered = 0

    async def handle(self, request: web.Request) -> web.StreamResponse:
        if request.method == "GET" and request.path.endswith("/events"):
            self.stream = asyncio.current_task()
        if request.method == "POST" and request.path.endswith("/audio") and self.audio_posts + 1 == self.cut_at \
                and self.stream is not None:
            self.stream.cancel()  # the event stream's connection drops
            self.cut += 1
        if request.method == "POST" and request.path == "/v1/sessions":
            body = await request.read()
            if b'"resume"' in body:
                return await self._without_answer(request, body)
        return await super().handle(request)

    async def _without_answer(self, request: web.Request, body: bytes) -> web.Response:
        assert self.http is not None
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP}
        async with self.http.post(self.target + request.path_qs, data=body, headers=headers) as up:
            reply = json.loads(await up.read())
        if "audio_from_ms" in reply:
            del reply["audio_from_ms"]
            self.unanswered += 1
        return web.json_response(reply, status=up.status)


async def test_a_resume_answered_without_audio_from_ms_goes_on_sending(hub: HubProcess) -> None:
    name = "en_libri_1221"
    pcm = load_pcm16(clip(name).path).tobytes() + bytes(32000)  # the clip and 1 s of silence
    proxy = await Unanswered(hub.http, cut_at=20).start()  # 2 s in: mid-sentence
    s, events = await session_through(proxy, pcm, 90, start_timeout_s=30.0)
    assert proxy.cut == 1 and proxy.unanswered >= 1 and s.reconnects >= 1
    end = events[-1]
    assert isinstance(end, SessionEnded) and end.reason == "stop", end  # not `idle`
    # nothing lost; without the answer the POST in flight at the cut may arrive twice (100 ms)
    sent_ms = len(pcm) * 1000 // 32000
    assert sent_ms <= end.stats.audio_ms <= sent_ms + 100, (end.stats.audio_ms, sent_ms)
    finals = " ".join(e.text for e in events if isinstance(e, TranscriptFinal))
    assert "apprehension" in finals.lower() and "thoughts affected" in finals.lower(), finals
