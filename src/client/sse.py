"""HTTP + SSE transport: POST /v1/sessions, GET its events as text/event-stream, POST audio/flush/stop."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

from ..core.commands import StartSession
from ..core.events import Event
from .base import Connection, StreamingClient
from .connection import start_fields
from .errors import ConnectionLost, HubRequestError, client_dependency
from .events import parse_event
from .held import SAMPLE_BYTES


def http_error(status: int, body: bytes) -> HubRequestError:
    try:
        err = json.loads(body)["error"]
        after = err.get("retry_after_ms")
        return HubRequestError(str(err["code"]), str(err["message"]), status,
                               retry_after_ms=after if isinstance(after, int) else None)
    except (ValueError, KeyError, TypeError, AttributeError):  # (not the hub's {"error": {...}})
        return HubRequestError(f"http_{status}", body[:200].decode(errors="replace"), status)


class SseConnection(Connection):
    answers_in_reply = True
    #: waits before asking again for the events of a session this connection created, answered 404
    UNKNOWN_RETRY_S = (0.05, 0.1, 0.2, 0.4, 0.8, 1.6)

    def __init__(self, client: SseClient) -> None:
        httpx = client_dependency("httpx", "the HTTP+SSE client (SseClient)")
        self.client = client
        headers = {"Authorization": f"Bearer {client.api_key}"} if client.api_key else {}
        self.http = httpx.AsyncClient(base_url=client.base_url, headers=headers,
                                      timeout=httpx.Timeout(client.start_timeout_s, read=None))
        self.session_id = ""
        self.audio_url = ""
        self.events_url = ""
        self.after = 0
        self.response: Any = None
        self.created = False  # this connection created its session and has not read its events yet
        # where this connection's audio sits on the session's timeline (raw PCM only: None, not known):
        # the timeline's end when it opened, and what it has sent since (an audio POST answered 5xx may
        # have arrived all the same: the hub is asked before it is sent again)
        self.base_ms: int | None = None
        self.sent = 0
        self.bytes_per_s = 0
        # the session's takeover epoch as the start or resume reply said (absent: 0): sent with every audio
        # and command POST, so that one from before a later takeover is refused (`moved`), not placed
        self.epoch = 0
        self.moved = False  # a POST was refused for its epoch: this connection no longer carries the session

    async def _post(self, url: str, *, again: bool = False, repeat: dict[str, str] | None = None, **kw: Any) -> Any:
        """`again`: a session's audio or command, sent again (after reconnect_delay_s, doubling up to 2 s, at
        most max_reconnects times) while the answer is a server error (5xx: e.g. a node that cannot reach
        Redis during a failover, or the balancer's 502 for a node that died under the request), so the audio
        is not dropped; the last error is raised. `repeat`: query parameters for the requests sent again
        (a stop's `again=true`: the first may have arrived)."""
        delay = self.client.reconnect_delay_s
        for attempt in range(self.client.max_reconnects + 1 if again else 1):
            if attempt and repeat:
                kw["params"] = {**kw.get("params", {}), **repeat}
            r = await self._post_once(url, **kw)
            if "epoch" in kw.get("params", {}):  # (the session's own requests, not a start or resume)
                await self._moved(r)
            if r.status_code < 500 or attempt == self.client.max_reconnects or not again:
                break
            await asyncio.sleep(delay)
            delay = min(2 * delay, 2.0)
        if r.status_code >= 400:
            raise http_error(r.status_code, r.content)
        return r

    async def _post_once(self, url: str, **kw: Any) -> Any:
        import httpx
        if self.http.is_closed:  # this connection was closed by a reconnect meanwhile
            raise ConnectionLost(f"POST {url}: the connection is closed")
        try:
            return await self.http.post(url, **kw)
        except httpx.TransportError as e:
            raise ConnectionLost(f"POST {url}: {e}") from e
        except RuntimeError as e:  # closed while the request was being set up
            if not self.http.is_closed:
                raise
            raise ConnectionLost(f"POST {url}: the connection is closed") from e

    async def _moved(self, r: Any) -> None:
        """An audio or command POST refused because the session was taken over by another node after this
        connection's start or resume (503 `node_lost` for its epoch, without `retry_after_ms`): this
        connection no longer carries the session. Its event stream is closed, so the reader resumes (the
        reply brings the new epoch and `audio_from_ms`, and the held audio goes again from there, this
        request's audio with it); ConnectionLost."""
        if r.status_code != 503:
            return
        err = http_error(r.status_code, r.content)
        if err.code != "node_lost" or err.retry_after_ms is not None:
            return
        await self._gone(err.message)

    async def _gone(self, why: str) -> None:
        """The session moved to another node since this connection's start or resume: end its event stream
        (the reader resumes); ConnectionLost."""
        self.moved = True  # (a stream not open yet ends as it opens)
        if self.response is not None:
            await self.response.aclose()  # (the reader's stream ends: it resumes)
        raise ConnectionLost(f"the session moved: {why}")

    def _epoch(self, **more: str) -> dict[str, str]:
        return {"epoch": str(self.epoch), **more}

    async def open(self, start: StartSession) -> str | None:
        r = await self._post("/v1/sessions", json=start_fields(start))
        info = r.json()
        self.session_id = info["session_id"]
        epoch = info.get("epoch")
        self.epoch = epoch if isinstance(epoch, int) else 0
        self.audio_url = info["audio_url"]
        self.events_url = info["events_url"]
        self.after = start.resume.last_seq if start.resume else 0
        self.created = start.resume is None
        width = SAMPLE_BYTES.get(start.audio.encoding, 0)
        self.bytes_per_s = width * start.audio.channels * start.audio.sample_rate
        if start.resume is not None:
            self.resumed_at_ms = info.get("audio_from_ms")
        self.base_ms = 0 if start.resume is None else self.resumed_at_ms
        return self.session_id  # type: ignore[no-any-return]

    async def events(self) -> AsyncIterator[Event]:
        """The session's event stream, parsed by httpx-sse (`id:`, `event:`, multi-line `data:` and the
        one optional space after each colon as the SSE specification says). Each event's `id` (its seq)
        is kept, so that a stream opened again on this connection asks for what follows (Last-Event-ID)."""
        import httpx
        sse = client_dependency("httpx_sse", "the HTTP+SSE client (SseClient)")
        headers = {"Last-Event-ID": str(self.after)} if self.after else {}
        unknown = 0
        try:
            while True:
                async with sse.aconnect_sse(self.http, "GET", self.events_url, headers=headers) as source:
                    r = source.response
                    self.response = r
                    if self.moved:
                        raise ConnectionLost("event stream: the session moved (a POST was refused for its epoch)")
                    if r.status_code == 204:
                        return  # the session ended and everything was delivered
                    if r.status_code == 404 and self.created and unknown < len(self.UNKNOWN_RETRY_S):
                        # behind a balancer the stream of a session created just now may reach another node
                        # of the cluster before the session is in Redis (DESIGN §8): ask again shortly
                        await asyncio.sleep(self.UNKNOWN_RETRY_S[unknown])
                        unknown += 1
                        continue
                    if r.status_code >= 500:  # the node (or the balancer) cannot serve it now: resume
                        raise ConnectionLost(f"event stream: {http_error(r.status_code, await r.aread())}")
                    if r.status_code >= 400:
                        raise http_error(r.status_code, await r.aread())
                    self.created = False
                    ended = False
                    async for message in source.aiter_sse():
                        if not message.data:  # a message with no data is not dispatched (SSE §9.2.6)
                            continue
                        ev = parse_event(json.loads(message.data))
                        if message.id.isdigit():
                            self.after = int(message.id)
                        ended = ev.type == "session.ended"
                        yield ev
                    # the hub closed the stream before session.ended (a dead node's is cut off, not closed):
                    # another node took the session over
                    self.moved = self.moved or not ended
                    return
        except sse.SSEError as e:  # not an event stream (e.g. a proxy's HTML page)
            raise ConnectionLost(f"event stream: {e}") from e
        except httpx.TransportError as e:
            raise ConnectionLost(f"event stream: {e}") from e

    async def send_audio(self, data: bytes) -> None:
        """POST the audio; answered 5xx (a node, or a relay, that died under the request; Redis away) or
        cut off, it is sent again (as `_post`), unless the hub says it has it already: a relay that
        died after delivering it (the balancer's 502) would otherwise have it twice on the timeline."""
        kw: dict[str, Any] = {"content": data, "headers": {"content-type": "application/octet-stream"},
                              "params": self._epoch()}
        delay = self.client.reconnect_delay_s
        for attempt in range(self.client.max_reconnects + 1):
            try:
                r = await self._post_once(self.audio_url, **kw)
            except ConnectionLost:
                if attempt == self.client.max_reconnects or self.http.is_closed:
                    raise
                r = None
            if r is not None:
                await self._moved(r)
            if r is not None and r.status_code < 500:
                if r.status_code >= 400:
                    raise http_error(r.status_code, r.content)
                self.sent += len(data)
                return
            if r is not None and attempt == self.client.max_reconnects:
                raise http_error(r.status_code, r.content)
            await asyncio.sleep(delay)
            delay = min(2 * delay, 2.0)
            if await self._arrived(len(data)):
                self.sent += len(data)
                return

    async def _arrived(self, size: int) -> bool:
        """Whether the session's timeline holds the audio just sent (`size` bytes after what this connection
        sent before): asked with a resume (`held_audio`), which answers how much audio it has received.
        False when it cannot be told (not raw PCM, the start of this connection's audio not known, the hub
        not answering). ConnectionLost when the answer is of a later takeover (another epoch): the timeline
        is the new owner's, and the held audio goes again from its `audio_from_ms` after a resume."""
        if self.base_ms is None or not self.bytes_per_s:
            return False
        body = {"resume": {"session_id": self.session_id, "last_seq": self.after, "held_audio": True}}
        try:
            r = await self._post_once("/v1/sessions", json=body)
            info = r.json() if r.status_code == 200 else {}
        except (ConnectionLost, ValueError):
            return False
        heard = info.get("audio_from_ms")
        if not isinstance(heard, int):
            return False
        if (info.get("epoch") or 0) != self.epoch:
            await self._gone(f"epoch {info.get('epoch')} (this connection's: {self.epoch})")
        end_ms = self.base_ms + (self.sent + size) * 1000 / self.bytes_per_s  # where this audio ends
        return heard >= end_ms - 1  # (the hub counts whole milliseconds)

    async def flush(self) -> None:
        await self._post(f"/v1/sessions/{self.session_id}/flush", again=True, params=self._epoch())

    async def stop(self, again: bool = False) -> None:
        """`again` (and every request sent again after a 5xx): `?again=true`, this stop may repeat one the
        hub has: while the session is stopping it is taken quietly, not refused."""
        repeat = {"again": "true"}
        await self._post(f"/v1/sessions/{self.session_id}/stop", again=True, repeat=repeat,
                         params=self._epoch(**(repeat if again else {})))

    async def keepalive(self) -> None:
        await self._post(f"/v1/sessions/{self.session_id}/keepalive", again=True, params=self._epoch())

    async def close(self) -> None:
        await self.http.aclose()


class SseClient(StreamingClient):
    """`SseClient("http://127.0.0.1:8000", api_key=...)`; the key goes in the Authorization header."""

    transport = "sse"

    def __init__(self, base_url: str, **kw: Any) -> None:
        super().__init__(**kw)
        self.base_url = base_url.rstrip("/")

    def connection(self) -> Connection:
        return SseConnection(self)
