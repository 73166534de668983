"""A TCP relay between one hub node and Redis that can hold back Redis's answers to the requests naming a
key: the node's reader of that key waits (as a CPU-starved event loop would be late to read it) while the
node's other Redis traffic (its lease, its event logs) goes on. Its own thread and event loop, so the node
reaches Redis through it while the test's loop is busy (starting the nodes).

`hold(key)`: from now on, the answers on every connection whose last request named `key`, or that sends a
request naming it, are kept back until `release()`; `asked` is set when, while holding, a request naming
`key` that is a read (XREAD) but not a blocking one (`BLOCK`) comes through. Any TCP service will do
(tests/client/test_sse_cut_post.py gates a hub's HTTP): `answered` is set when an answer is held,
`dropped` when a held connection is closed by its client; `cut(key)` closes the connections whose last
request named `key`, as a dying server would."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class _Pipe:
    """One node connection: its requests go on at once, its answers wait while it is held."""

    def __init__(self, gate: RedisGate, writer: asyncio.StreamWriter) -> None:
        self.gate = gate
        self.writer = writer  # to the node
        self.last = b""       # the node's last request on this connection
        self.held: list[bytes] = []
        self.holding = False

    def request(self, data: bytes) -> None:
        self.last = data
        key = self.gate.key
        if key and key in data:
            self.holding = True
            upper = data.upper()
            if b"XREAD" in upper and b"BLOCK" not in upper:
                self.gate.asked.set()

    def answer(self, data: bytes) -> None:
        if self.holding:
            self.held.append(data)
            self.gate.answered.set()
        else:
            self.writer.write(data)

    def let_go(self) -> None:
        self.holding = False
        for data in self.held:
            self.writer.write(data)
        self.held.clear()


class RedisGate:
    def __init__(self, redis_port: int) -> None:
        self.redis_port = redis_port
        self.port = _free_port()
        self.key = b""  # held while not empty
        self.asked = threading.Event()
        self.answered = threading.Event()
        self.dropped = threading.Event()
        self.pipes: set[_Pipe] = set()
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisGate:
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self._listen(), self.loop).result(10)
        return self

    def stop(self) -> None:
        async def close() -> None:
            if self._server is not None:
                self._server.close()
            for p in list(self.pipes):
                p.writer.close()
        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(close(), self.loop).result(5)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)

    def hold(self, key: str) -> None:
        def go() -> None:
            self.key = key.encode()
            self.asked.clear()
            for p in self.pipes:
                if self.key in p.last:
                    p.holding = True
        self._run(go)

    def cut(self, key: str) -> None:
        def go() -> None:
            for p in list(self.pipes):
                if key.encode() in p.last:
                    p.writer.close()
        self._run(go)

    def release(self) -> None:
        def go() -> None:
            self.key = b""
            for p in self.pipes:
                p.let_go()
        self._run(go)

    def _run(self, fn: object) -> None:
        async def call() -> None:
            fn()  # type: ignore[operator]
        asyncio.run_coroutine_threadsafe(call(), self.loop).result(10)

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_r, up_w = await asyncio.open_connection("127.0.0.1", self.redis_port)
        except OSError:
            writer.close()
            return
        pipe = _Pipe(self, writer)
        self.pipes.add(pipe)

        async def requests() -> None:
            while data := await reader.read(65536):
                pipe.request(data)
                up_w.write(data)
            if pipe.holding:
                self.dropped.set()
            up_w.close()

        async def answers() -> None:
            while data := await up_r.read(65536):
                pipe.answer(data)
            writer.close()

        with contextlib.suppress(OSError, ConnectionError):
            await asyncio.gather(requests(), answers())
        self.pipes.discard(pipe)
        writer.close()
