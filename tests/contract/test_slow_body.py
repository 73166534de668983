"""A request body dripped a byte at a time (a slow POST: "R.U.D.Y.", slowloris on the HTTP + SSE transport's
audio route) is answered 408 with the contract body and closed, where the hub held the connection for as
long as the client liked (found by a stranger's first hour: 40 s of 1 byte/s on POST /v1/sessions/{id}/audio,
/v1/sessions and /v1/tokens, all still open). A body that comes at a normal pace is served, and the SSE
session whose audio route was dripped goes on. Real hub, raw sockets (no client library drips a body)."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from tests.support import HubProcess, base_config

TIMEOUT_S = 1.5  # server.header_timeout_s: the head's time, and the body's before its bytes buy more


@pytest.fixture(scope="module")
def quick_hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HubProcess]:
    h = HubProcess(base_config(), tmp_path_factory.mktemp("slow-body"),
                   env={"ASRHUB_SERVER__HEADER_TIMEOUT_S": str(TIMEOUT_S)}).start()
    yield h
    h.stop()


async def _drip(port: int, path: str, length: int, content_type: str) -> bytes:
    """The head at once, then the body one byte every 0.3 s until the hub answers, and one byte more; what the
    hub answers before it closes its side."""
    loop = asyncio.get_running_loop()
    s = socket.socket()
    s.setblocking(False)
    try:
        await loop.sock_connect(s, ("127.0.0.1", port))
        await loop.sock_sendall(s, (f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: {content_type}\r\n"
                                    f"Content-Length: {length}\r\n\r\n").encode())

        async def dripper() -> None:
            for _ in range(length):
                await asyncio.sleep(0.3)
                await loop.sock_sendall(s, b" ")

        drip = asyncio.create_task(dripper())
        answered: asyncio.Future[None] = loop.create_future()
        loop.add_reader(s.fileno(), lambda: answered.done() or answered.set_result(None))
        try:
            async with asyncio.timeout(20):
                await answered  # the hub's answer is here, unread
        finally:
            loop.remove_reader(s.fileno())
            drip.cancel()
            await asyncio.gather(drip, return_exceptions=True)
        # one more byte after the answer, before reading it (a client still sending): the hub must still read
        # and drop it, not reset the connection (which loses the answer not yet read)
        await loop.sock_sendall(s, b" ")
        data = b""
        async with asyncio.timeout(20):
            while chunk := await loop.sock_recv(s, 65536):
                data += chunk
        return data
    finally:
        s.close()


async def test_a_dripped_body_is_answered_408_and_the_session_goes_on(quick_hub: HubProcess) -> None:
    async with httpx.AsyncClient(base_url=quick_hub.http, timeout=30) as http:
        sid = (await http.post("/v1/sessions", json={})).json()["session_id"]
        answers = await asyncio.gather(
            _drip(quick_hub.port, f"/v1/sessions/{sid}/audio", 100_000, "application/octet-stream"),
            _drip(quick_hub.port, "/v1/sessions", 100_000, "application/json"),
            _drip(quick_hub.port, "/v1/tokens", 1000, "application/json"))
        for data in answers:
            head, _, body = data.partition(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 408"), data[:300]
            err = json.loads(body)["error"]
            assert err["code"] == "invalid_command" and "request body not complete" in err["message"], err
        # the session whose audio route was dripped takes audio and ends as asked
        assert (await http.post(f"/v1/sessions/{sid}/audio", content=bytes(32000))).status_code == 202
        assert (await http.post(f"/v1/sessions/{sid}/stop")).status_code == 202
        async with http.stream("GET", f"/v1/sessions/{sid}/events") as events:
            types = [json.loads(line[5:])["type"] async for line in events.aiter_lines() if line.startswith("data:")]
        assert types[0] == "session.started" and types[-1] == "session.ended", types


async def test_a_body_at_a_normal_pace_is_served(quick_hub: HubProcess) -> None:
    """960 KiB of audio in 64 KiB pieces 150 ms apart (2.25 s in all, longer than the timeout): not cut."""
    async def body() -> AsyncIterator[bytes]:
        for _ in range(15):
            await asyncio.sleep(0.15)
            yield bytes(65536)

    async with httpx.AsyncClient(base_url=quick_hub.http, timeout=60) as http:
        sid = (await http.post("/v1/sessions", json={})).json()["session_id"]
        r = await http.post(f"/v1/sessions/{sid}/audio", content=body(),
                            headers={"content-type": "application/octet-stream", "content-length": str(15 * 65536)})
        assert r.status_code == 202, r.text
        assert (await http.post(f"/v1/sessions/{sid}/stop")).status_code == 202
