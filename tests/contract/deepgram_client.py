"""The contract suite's client for Deepgram's live socket (`GET /v1/listen`), driven by the official
`deepgram-sdk` (v7: `AsyncDeepgramClient(...).listen.v1.connect`, its messages parsed by the SDK's types).

Deepgram's wire maps onto the suite's events as:
  interim `Results` (is_final false)       -> transcript.partial
  `Results` with is_final                   -> transcript.final (with Deepgram's speech_final, from_finalize)
  `SpeechStarted`                           -> speech.started (offset_ms = timestamp)
  `UtteranceEnd` (after a speech_final)     -> speech.ended (offset_ms = last_word_end)
  `Metadata` (the stream's last message)    -> session.ended
  `Error`                                   -> error (code = Deepgram's `variant`)
A refused handshake is an HTTP error whose code is Deepgram's `err_code` (e.g. INVALID_QUERY_PARAMETER).

What the wire has not: session ids, seqs, resume, a `start` message (the socket opens with the session's
parameters, so one connection is one session and `connect` opens nothing), and a refusal of audio that is
not whole samples (Deepgram takes raw samples split anywhere). `features` says so.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from typing import Any

from deepgram import AsyncDeepgramClient
from deepgram.core.api_error import ApiError
from deepgram.environment import DeepgramClientEnvironment
from deepgram.listen.v1.types import (
    ListenV1Error,
    ListenV1Metadata,
    ListenV1Results,
    ListenV1SpeechStarted,
    ListenV1UtteranceEnd,
)

from tests.contract.clients import PCM16, Client

ENCODINGS = {"pcm_s16le": "linear16", "pcm_f32le": "linear32", "mulaw": "mulaw", "alaw": "alaw"}


def query(body: dict[str, Any]) -> dict[str, Any]:
    """A hub `start` body as /v1/listen's query: audio -> encoding/sample_rate/channels, provider -> model;
    a field Deepgram has no parameter for goes as that parameter (the hub refuses it, as Deepgram would)."""
    q: dict[str, Any] = {"model": "nova-3", "interim_results": "true", "vad_events": "true",
                         "utterance_end_ms": 1000, "punctuate": "true"}
    for key, value in body.items():
        if key == "audio":
            q["encoding"] = ENCODINGS.get(value["encoding"], value["encoding"])
            q["sample_rate"] = value["sample_rate"]
            q["channels"] = value.get("channels", 1)
        elif key == "provider":
            q["model"] = value
        else:
            q[key] = value
    return q


class DeepgramClient(Client):
    name = "deepgram"
    features: frozenset[str] = frozenset()

    def __init__(self, hub: Any) -> None:
        super().__init__(hub)
        env = DeepgramClientEnvironment(base=hub.http, production=f"ws://127.0.0.1:{hub.port}",
                                        agent=f"ws://127.0.0.1:{hub.port}", agent_rest=hub.http)
        self.dg = AsyncDeepgramClient(api_key="x", environment=env)
        self.stack: contextlib.AsyncExitStack | None = None
        self.conn: Any = None
        self.reader: asyncio.Task[None] | None = None
        self.finals = 0

    # -- Deepgram's messages -> the suite's events ----------------------------------------------
    def _event(self, msg: Any) -> dict[str, Any] | None:
        if isinstance(msg, ListenV1Results):
            alt = msg.channel.alternatives[0]
            ev: dict[str, Any] = {"text": alt.transcript, "start_ms": round(msg.start * 1000),
                                  "end_ms": round((msg.start + msg.duration) * 1000)}
            if not msg.is_final:
                return {"type": "transcript.partial", "utterance_id": f"u{self.finals + 1}", **ev}
            self.finals += 1
            return {"type": "transcript.final", "utterance_id": f"u{self.finals}", **ev,
                    "speech_final": msg.speech_final, "from_finalize": msg.from_finalize}
        if isinstance(msg, ListenV1SpeechStarted):
            return {"type": "speech.started", "offset_ms": round(msg.timestamp * 1000)}
        if isinstance(msg, ListenV1UtteranceEnd):
            return {"type": "speech.ended", "offset_ms": round(msg.last_word_end * 1000)}
        if isinstance(msg, ListenV1Metadata):
            return {"type": "session.ended", "duration_ms": round(msg.duration * 1000)}
        if isinstance(msg, ListenV1Error):
            return {"type": "error", "code": msg.variant, "message": msg.description}
        return None

    async def _read(self, conn: Any) -> None:
        with contextlib.suppress(Exception):
            async for msg in conn:
                ev = self._event(msg)
                if ev is not None:
                    self._on_event(ev)

    def session_events(self) -> list[dict[str, Any]]:
        """One socket is one session: every event it received."""
        return list(self.events)

    # -- commands ------------------------------------------------------------------------------
    async def start(self, body: dict[str, Any]) -> str | None:
        """Open the socket with the session's parameters; a refusal is the handshake's HTTP answer."""
        await self.close()
        q = query(body)
        stack = contextlib.AsyncExitStack()
        try:
            self.conn = await stack.enter_async_context(self.dg.listen.v1.connect(
                model=q.pop("model"), request_options={"additional_query_parameters": q}))  # type: ignore[typeddict-item]
        except ApiError as e:
            self.errors.put_nowait({**refusal(e), "status": e.status_code})
            self._got.set()
            return None
        self.stack = stack
        self.stream_opened = time.time()
        self._ended.clear()
        self.finals = 0
        self.reader = asyncio.create_task(self._read(self.conn))
        headers = getattr(self.conn._websocket, "response_headers", None) or {}
        self.session_id = headers.get("dg-request-id") or uuid.uuid4().hex
        return self.session_id

    async def start_again(self, body: dict[str, Any]) -> None:
        raise NotImplementedError("Deepgram's socket has no start message: it opens with its parameters")

    async def send_audio(self, data: bytes) -> None:
        await self.conn.send_media(data)

    async def flush(self) -> None:
        await self.conn.send_finalize()

    async def stop(self) -> None:
        await self.conn.send_close_stream()

    async def keepalive(self) -> None:
        await self.conn.send_keep_alive()

    async def _opened(self) -> None:
        if self.conn is None:  # the socket is the session: a text message needs one open
            assert await self.start({"audio": PCM16})

    async def send_malformed(self) -> None:
        await self._opened()
        await self.conn._send("this is not json")  # the SDK sends only its own models; its raw send

    async def send_unknown_command(self) -> None:
        await self._opened()
        await self.conn._send({"type": "Rewind"})

    async def drop(self) -> None:
        await self.close()

    async def close(self) -> None:
        stack, self.stack, self.conn = self.stack, None, None
        if stack is not None:
            with contextlib.suppress(Exception):
                await stack.aclose()
        if self.reader is not None:
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await asyncio.wait_for(self.reader, 5)
            self.reader = None


def refusal(e: ApiError) -> dict[str, Any]:
    """Deepgram's refusal ({err_code, err_msg, param}) as the suite's error. The SDK's ApiError keeps only a
    fixed text; the handshake's answer is on the websockets error it was raised from, in its `dg-error`
    header (the legacy websockets client the SDK uses keeps no body)."""
    cause = e.__context__
    response = getattr(cause, "response", None)
    headers = getattr(response, "headers", None) or getattr(cause, "headers", None) or {}
    raw = headers.get("dg-error") or getattr(response, "body", None) or b"{}"
    try:
        body = json.loads(raw)
    except ValueError:
        body = None
    if not isinstance(body, dict) or "err_code" not in body:
        return {"code": f"http_{e.status_code}", "message": str(e.body)}
    return {"code": body["err_code"], "message": body.get("err_msg"), "param": body.get("param")}
