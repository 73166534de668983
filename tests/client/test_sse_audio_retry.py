"""An HTTP + SSE audio POST that reached the hub but whose answer the client never got as 202 (issue 21: a
relay node that died after putting the audio in its owner's inbox; the balancer answered 502): asrhub.client
sends audio answered 5xx again, and it used to send this one again too, so the session's timeline held
those 100 ms twice. It now asks the hub first (a resume with `held_audio`: how much audio the session has
received) and sends it again only when it did not arrive. A real hub on loopback behind a small HTTP relay
(aiohttp) that passes everything on and, for one audio POST, answers 502 after the hub took it."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import ClientSession, ClientTimeout, web

from asrhub.client import LiveSession, SessionEnded, SseClient, TranscriptFinal
from asrhub.core.commands import AudioSpec
from tests.support import HubProcess, clip, load_pcm16, wer

CHUNK = 3200  # 100 ms of 16 kHz pcm_s16le
HOP = {"content-length", "transfer-encoding", "connection", "content-encoding", "keep-alive"}


class BadGateway:
    """Passes each request on to the hub (Host kept, so the URLs the hub answers point here) and streams
    the answer back; the `fail_at`-th audio POST is answered 502 once the hub has answered it."""

    def __init__(self, target: str, fail_at: int) -> None:
        self.target = target.rstrip("/")
        self.fail_at = fail_at
        self.audio_posts = 0
        self.failed = 0
        self.port = 0
        self.runner: web.AppRunner | None = None
        self.http: ClientSession | None = None

    async def start(self) -> BadGateway:
        self.http = ClientSession(timeout=ClientTimeout(total=None), auto_decompress=False)
        app = web.Application(client_max_size=1 << 24)
        app.router.add_route("*", "/{tail:.*}", self.handle)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        server: Any = site._server  # noqa: SLF001 (the port the OS gave)
        self.port = server.sockets[0].getsockname()[1]
        return self

    async def handle(self, request: web.Request) -> web.StreamResponse:
        assert self.http is not None
        body = await request.read()
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP}
        audio = request.method == "POST" and request.path.endswith("/audio")
        if audio:
            self.audio_posts += 1
        async with self.http.request(request.method, self.target + request.path_qs, data=body, headers=headers,
                                     allow_redirects=False) as up:
            if audio and self.audio_posts == self.fail_at:
                await up.read()  # the hub has it ...
                self.failed += 1
                return web.Response(status=502, text="502 Bad Gateway")  # ... the client is told otherwise
            resp = web.StreamResponse(status=up.status,
                                      headers={k: v for k, v in up.headers.items() if k.lower() not in HOP})
            await resp.prepare(request)
            async for data in up.content.iter_any():
                await resp.write(data)
            await resp.write_eof()
            return resp

    async def close(self) -> None:
        if self.http is not None:
            await self.http.close()
        if self.runner is not None:
            await self.runner.cleanup()


async def session_through(proxy: BadGateway, pcm: bytes, timeout_s: float, **kw: Any) -> tuple[LiveSession, list[Any]]:
    """`pcm` (16 kHz pcm_s16le) sent as fast as it goes through `proxy` by an SseClient (`kw`), then `stop`:
    the session and every event it gave; the client and the proxy are closed."""
    client = SseClient(f"http://127.0.0.1:{proxy.port}", reconnect_delay_s=0.05, **kw)
    try:
        s = await client.session(audio=AudioSpec(encoding="pcm_s16le", sample_rate=16000, channels=1))
        events: list[Any] = []

        async def read() -> None:
            async for ev in s:
                events.append(ev)

        reading = asyncio.create_task(read())
        for i in range(0, len(pcm), CHUNK):
            await s.send(pcm[i:i + CHUNK])
        await s.stop()
        await asyncio.wait_for(reading, timeout_s)
        await s.close()
    finally:
        await client.aclose()
        await proxy.close()
    return s, events


async def test_audio_answered_502_after_it_arrived_is_not_sent_twice(hub: HubProcess) -> None:
    name = "en_libri_1221"
    pcm = load_pcm16(clip(name).path).tobytes() + bytes(32000)  # the clip and 1 s of silence
    proxy = await BadGateway(hub.http, fail_at=20).start()  # 2 s in: mid-sentence
    _, events = await session_through(proxy, pcm, 60)
    assert proxy.failed == 1
    end = events[-1]
    assert isinstance(end, SessionEnded) and end.reason == "stop", end
    # the session's timeline: every 100 ms once (the one answered 502 was not sent again)
    assert end.stats.audio_ms == len(pcm) * 1000 // 32000, (end.stats.audio_ms, len(pcm) * 1000 // 32000)
    finals = [e.text for e in events if isinstance(e, TranscriptFinal)]
    assert wer([clip(name).transcript], [" ".join(finals)]) < 0.25, finals
