"""A loopback TCP relay between a client and the hub whose connections a test can cut (`sever()`): the
client's socket is reset under it, as when a network path drops, without touching the client's code."""

from __future__ import annotations

import asyncio
import contextlib


class TcpProxy:
    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = 0
        self.pairs: set[tuple[asyncio.StreamWriter, asyncio.StreamWriter]] = set()
        self.severed = 0
        self.server: asyncio.Server | None = None

    async def start(self) -> TcpProxy:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.transport.abort()
            return
        pair = (writer, up_writer)
        self.pairs.add(pair)
        try:
            await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))
        except asyncio.CancelledError:
            pass  # the relay is shutting down (test teardown)
        finally:
            self.pairs.discard(pair)

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            with contextlib.suppress(Exception):
                writer.close()

    def sever(self) -> int:
        """Reset every relayed connection now (both sides); new connections are still relayed."""
        n = 0
        for a, b in list(self.pairs):
            a.transport.abort()
            b.transport.abort()
            n += 1
        self.pairs.clear()
        self.severed += n
        return n

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
        self.sever()
        if self.server is not None:
            await self.server.wait_closed()
