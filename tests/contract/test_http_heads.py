"""The request-head bounds (api/http_protocol.py) across a kept-alive connection: the protocol finds
where each head begins and ends with a parser of its own, so pipelined requests, a big body between two
heads, and an oversized head after a normal request are each judged on their own head."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Iterator

import pytest

from asrhub.api.http_protocol import HeadBoundProtocol
from tests.support import HubProcess, base_config, running


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HubProcess]:
    yield from running(base_config(), tmp_path_factory.mktemp("heads"))


async def exchange(hub: HubProcess, *sends: bytes, answers: int) -> list[tuple[bytes, bytes]]:
    """Send the bytes on one connection; read `answers` responses (head, body), then close."""
    reader, writer = await asyncio.open_connection("127.0.0.1", hub.port)
    try:
        for data in sends:
            writer.write(data)
            await writer.drain()
        out = []
        for _ in range(answers):
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 30)
            length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                          if line.lower().startswith(b"content-length:"))
            out.append((head, await reader.readexactly(length)))
        return out
    finally:
        writer.close()


def get(path: str, extra: bytes = b"") -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: x\r\n".encode() + extra + b"\r\n"


async def test_pipelined_requests_are_each_answered(hub: HubProcess) -> None:
    got = await exchange(hub, get("/healthz") + get("/v1/providers") + get("/healthz"), answers=3)
    assert [h.split(b"\r\n")[0] for h, _ in got] == [b"HTTP/1.1 200 OK"] * 3
    assert isinstance(json.loads(got[1][1]), list)


async def test_a_big_body_between_two_heads_is_not_a_head(hub: HubProcess) -> None:
    body = b"\x00" * (3 * 1024 * 1024)  # far over the head limit, in many socket reads
    post = (b"POST /v1/transcribe HTTP/1.1\r\nHost: x\r\ncontent-type: application/octet-stream\r\n"
            + f"content-length: {len(body)}\r\n\r\n".encode() + body)
    got = await exchange(hub, post, get("/healthz"), answers=2)
    assert got[0][0].startswith(b"HTTP/1.1 400")  # (not multipart: the route's own answer, not a 431)
    assert json.loads(got[0][1])["error"]["code"] == "invalid_command"
    assert got[1][0].startswith(b"HTTP/1.1 200")


async def test_an_oversized_head_after_a_normal_request_is_refused_alone(hub: HubProcess) -> None:
    big = get("/healthz", b"x-big: " + b"a" * (HeadBoundProtocol.head_limit + 1024) + b"\r\n")
    got = await exchange(hub, get("/healthz"), big, answers=2)
    assert got[0][0].startswith(b"HTTP/1.1 200")
    assert got[1][0].startswith(b"HTTP/1.1 431")
    assert json.loads(got[1][1])["error"]["code"] == "headers_too_large"


async def test_a_malformed_head_is_uvicorns_400_and_the_next_connection_is_served(hub: HubProcess) -> None:
    loop = asyncio.get_running_loop()
    s = socket.socket()
    s.setblocking(False)
    try:
        await loop.sock_connect(s, ("127.0.0.1", hub.port))
        await loop.sock_sendall(s, b"GET /healthz HTTP/1.1\r\nHost x\r\n\r\n")  # a header line with no colon
        head = await asyncio.wait_for(loop.sock_recv(s, 65536), 15)
    finally:
        s.close()
    assert head.startswith(b"HTTP/1.1 400"), head[:200]
    got = await exchange(hub, get("/healthz"), answers=1)
    assert got[0][0].startswith(b"HTTP/1.1 200")
