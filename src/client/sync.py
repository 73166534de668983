"""A blocking wrapper for scripts: the async client runs on a private event loop in a background thread.

    with SyncClient(WebSocketClient("http://127.0.0.1:8000")) as c:
        for ev in c.stream("speech.flac"):
            print(ev.type)
        print(c.transcribe("speech.wav"))
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Iterator
from typing import Any, TypeVar

from ..core.events import Event
from .audio import AudioSource
from .base import StreamingClient
from .options import StartOptions

T = TypeVar("T")


class SyncClient:
    def __init__(self, client: StreamingClient) -> None:
        self.client = client
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="asrhub-client", daemon=True)
        self._thread.start()

    def _run(self, aw: Awaitable[T]) -> T:
        async def wrap() -> T:
            return await aw
        return asyncio.run_coroutine_threadsafe(wrap(), self._loop).result()

    def stream(self, audio: AudioSource, options: StartOptions | None = None, **kw: Any) -> Iterator[Event]:
        """Every event of one session, as `StreamingClient.stream` yields them (an async iterator of chunks
        as `audio` would be iterated on the client's own loop; pass bytes, a path or a plain iterable)."""
        agen = self.client.stream(audio, options, **kw)
        try:
            while True:
                try:
                    yield self._run(agen.__anext__())
                except StopAsyncIteration:
                    return
        finally:
            self._run(agen.aclose())

    def transcribe(self, audio: AudioSource, options: StartOptions | None = None, **kw: Any) -> str:
        return self._run(self.client.transcribe(audio, options, **kw))

    def close(self) -> None:
        if self._loop.is_running():
            self._run(self.client.aclose())
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(5)
        self._loop.close()

    def __enter__(self) -> SyncClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
