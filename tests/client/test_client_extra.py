"""Issue 24: a client transport whose packages (the `client` extra) are missing says which install
fixes it, before any connection is tried; WebSocket and gRPC need only the core dependencies."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.missing_packages import env_without
from tests.support import REPO

PROGRAM = """
import asyncio

from asrhub.client import GrpcClient, MissingClientDependency, SocketIOClient, SseClient, WebSocketClient, create_token


async def main():
    WebSocketClient("http://127.0.0.1:9"), GrpcClient("127.0.0.1:9")  # core dependencies only
    for client in (SseClient("http://127.0.0.1:9"), SocketIOClient("http://127.0.0.1:9")):
        try:
            async for _ in client.stream(bytes(3200)):
                pass
        except MissingClientDependency as e:
            print(type(client).__name__, "|", e)
    try:
        await create_token("http://127.0.0.1:9", "key")
    except MissingClientDependency as e:
        print("create_token |", e)

asyncio.run(main())
"""


def test_missing_client_packages_name_the_client_extra(tmp_path: Path) -> None:
    r = subprocess.run([sys.executable, "-c", PROGRAM], capture_output=True, text=True, cwd=REPO, timeout=120,
                       env=env_without(tmp_path, "httpx", "aiohttp"))
    assert r.returncode == 0, r.stderr
    lines = dict(ln.split(" | ", 1) for ln in r.stdout.splitlines())
    assert set(lines) == {"SseClient", "SocketIOClient", "create_token"}, r.stdout
    assert "'httpx'" in lines["SseClient"] and "'httpx'" in lines["create_token"]
    assert "'aiohttp'" in lines["SocketIOClient"]
    for message in lines.values():
        assert "pip install 'asrhub[client]'" in message
