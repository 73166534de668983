"""Deepgram-compatible live transcription, GET /v1/listen (DESIGN §3.8): a thin transport over the
SessionService and SessionBinding, speaking Deepgram's streaming API (wire models in deepgram_wire).

- The query string configures one hub session: `model` (a hub provider, an OpenAI alias, or a Deepgram
  model name, which leaves the choice to the hub), `language` (`multi` -> detection), `encoding` +
  `sample_rate` + `channels` (none: containerised audio, its container sniffed from the first bytes),
  `interim_results` -> partials, `endpointing` (ms -> vad.silence_ms; false -> no VAD: utterances end only
  at Finalize / CloseStream), `keywords`/`keyterm` -> hotwords (or the prompt where the provider takes
  no hotwords). A refused parameter is an HTTP 400 at the handshake, as Deepgram answers it.
- Binary frames are audio (an empty one ends the stream, as Deepgram's legacy close does); text frames are
  `KeepAlive` -> keepalive, `Finalize` -> flush, `CloseStream` -> stop.
- Partials go out as `Results` with is_final false; finals with is_final true, `speech_final` when the
  utterance ended on silence (semantic turn mode: at the end of the turn), `from_finalize` when a Finalize
  ended it. `SpeechStarted` (vad_events) and `UtteranceEnd` (utterance_end_ms: after each speech_final
  final) follow the hub's speech events. At the end, `Metadata`, then the close (1000).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import json
import logging
import uuid
from collections.abc import Mapping
from typing import Any

from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from pydantic import BaseModel, ValidationError

from ..core.commands import AudioSpec, StartSession
from ..core.errors import ErrorCode, HubError
from ..core.events import (
    ErrorEvent,
    Event,
    SessionEnded,
    SessionStarted,
    SpeechEnded,
    SpeechStarted,
    TranscriptFinal,
    TranscriptPartial,
)
from ..providers.base import Provider
from . import deepgram_wire as dg
from .binding import SessionBinding
from .deepgram_plan import SAMPLE_BYTES, plan, sniff

log = logging.getLogger(__name__)
router = APIRouter()

class ListenConnection:
    def __init__(self, ws: WebSocket, params: dg.ListenParams, start: StartSession, provider: Provider,
                 request_id: str) -> None:
        self.ws = ws
        self.params = params
        self.start_cmd = start
        self.provider = provider.name
        self.info = dg.ModelInfo(name=provider.name, version=provider.model, arch="asrhub")
        self.request_id = request_id
        hub = ws.app.state.hub
        self.bind = SessionBinding(hub.service, "deepgram", ws.scope.get("asrhub.api_key"))
        self.sender: asyncio.Task[None] | None = None
        self.started = False
        self.finalizes = 0  # Finalize messages whose final has not gone out
        self.carry = b""  # the bytes of a sample frame split across messages
        self.send_lock = asyncio.Lock()
        self.end_reasons: dict[str, str] = {}  # utterance id -> how its speech ended
        self.ends = 0
        self.created = datetime.datetime.now(datetime.UTC).isoformat().replace("+00:00", "Z")

    async def send(self, msg: BaseModel) -> None:
        async with self.send_lock:
            await self.ws.send_text(msg.model_dump_json())

    def meta(self) -> dg.ResultMetadata:
        return dg.ResultMetadata(request_id=self.request_id, model_info=self.info,
                                 model_uuid=dg.model_uuid(self.provider))

    # -- hub events -> Deepgram messages ------------------------------------------------------
    async def on_event(self, ev: Event) -> bool | None:
        if isinstance(ev, SessionStarted):
            self.provider = ev.provider
            self.info = dg.ModelInfo(name=ev.provider, version=self.info.version, arch="asrhub")
        elif isinstance(ev, SpeechStarted) and self.params.vad_events:
            await self.send(dg.SpeechStartedMsg(timestamp=ev.offset_ms / 1000))
        elif isinstance(ev, SpeechEnded):
            self.ends += 1
            self.end_reasons[f"u{self.ends}"] = ev.reason
        elif isinstance(ev, TranscriptPartial):
            await self.send(self.results(ev.text, [], ev.start_ms, ev.end_ms, final=False))
        elif isinstance(ev, TranscriptFinal):
            await self.final(ev)
        elif isinstance(ev, ErrorEvent):
            await self.send(dg.ErrorMsg(variant=ev.code, description=ev.message))
        elif isinstance(ev, SessionEnded):
            await self.metadata(ev.stats.audio_ms)
        return None

    async def metadata(self, audio_ms: int) -> None:
        uid = dg.model_uuid(self.provider)
        await self.send(dg.Metadata(request_id=self.request_id, sha256="", created=self.created,
                                    duration=audio_ms / 1000, channels=self.start_cmd.audio.channels,
                                    models=[uid], model_info={uid: self.info}))

    async def final(self, ev: TranscriptFinal) -> None:
        reason = self.end_reasons.pop(ev.utterance_id, None)
        speech_final = ev.end_of_turn if ev.end_of_turn is not None else reason in ("silence", "turn", "max_silence")
        words = [dg.DgWord(word=dg.plain(w.word) or w.word.strip(), start=w.start_ms / 1000, end=w.end_ms / 1000,
                           confidence=w.confidence,
                           punctuated_word=w.word.strip() if self.params.punctuated else dg.plain(w.word))
                 for w in ev.words or [] if w.word.strip()]
        msg = self.results(ev.text, words, ev.start_ms, ev.end_ms, final=True)
        msg.speech_final = speech_final
        msg.from_finalize = reason == "flush" and self.finalizes > 0  # a stop flushes too: that is not one
        if msg.from_finalize:
            self.finalizes -= 1
        await self.send(msg)
        if speech_final and self.params.utterance_end_ms is not None:
            last = words[-1].end if words else ev.end_ms / 1000
            await self.send(dg.UtteranceEnd(last_word_end=last))

    def results(self, text: str, words: list[dg.DgWord], start_ms: int, end_ms: int, *, final: bool) -> dg.Results:
        transcript = text.strip() if self.params.punctuated else dg.plain(text)
        confidence = sum(w.confidence for w in words) / len(words) if words else (1.0 if transcript else 0.0)
        alt = dg.Alternative(transcript=transcript, confidence=round(confidence, 4), words=words)
        return dg.Results(duration=max(0, end_ms - start_ms) / 1000, start=start_ms / 1000, is_final=final,
                          speech_final=False, channel=dg.Channel(alternatives=[alt]), metadata=self.meta())

    async def pump(self) -> None:
        try:
            if await self.bind.pump(self.on_event, 0):
                await self.ws.close(1000)
            elif self.bind.moved:
                await self.ws.close(1012, "session moved")
        except (WebSocketDisconnect, RuntimeError, OSError):
            pass

    # -- client messages -----------------------------------------------------------------------
    async def open(self, audio: AudioSpec | None = None) -> None:
        """Start the hub session (raw audio: before the handshake is answered, so a refusal is its HTTP
        status, as Deepgram's are; containerised audio: at its first bytes)."""
        cmd = self.start_cmd if audio is None else self.start_cmd.model_copy(update={"audio": audio})
        self.start_cmd = cmd
        await self.bind.start(cmd)
        self.started = True

    def stream(self) -> None:
        if self.started and self.sender is None:
            self.sender = asyncio.create_task(self.pump())

    async def handle(self, msg: Mapping[str, Any]) -> None:
        data = msg.get("bytes")
        if isinstance(data, bytes):
            if not data:  # Deepgram's legacy end of stream
                if self.bind.is_open():
                    self.bind.stop()
                return
            if not self.started:
                await self.open(sniff(data))
                self.stream()
            self.push(data)
            return
        text = msg.get("text")
        if not isinstance(text, str):
            return
        try:
            cmd = dg.ClientMessage.model_validate(json.loads(text))
        except (ValueError, ValidationError):
            await self.send(dg.ErrorMsg(variant="SchemaError", message=text[:500], description=(
                "not a message of this socket: send binary audio, or {\"type\": \"KeepAlive\" | \"Finalize\" "
                "| \"CloseStream\"}")))
            return
        if not self.started:  # nothing streamed yet (containerised audio starts at its first bytes)
            if cmd.type == "CloseStream":  # no audio at all: the end of an empty stream
                await self.metadata(0)
                await self.ws.close(1000)
            return
        if cmd.type == "KeepAlive":
            self.bind.keepalive()
        elif cmd.type == "Finalize":
            self.bind.flush()
            self.finalizes += 1
        elif self.bind.is_open():
            self.finalizes = 0
            self.bind.stop()

    def push(self, data: bytes) -> None:
        """Raw samples may be split anywhere across Deepgram's binary frames: the hub gets whole frames, a
        split one's bytes wait for the next message."""
        width = SAMPLE_BYTES.get(self.start_cmd.audio.encoding, 0) * self.start_cmd.audio.channels
        if width > 1:
            data = self.carry + data
            cut = len(data) - len(data) % width
            data, self.carry = data[:cut], data[cut:]
            if not data:
                return
        self.bind.audio(data)

    async def report(self, err: HubError) -> None:
        if self.bind.fail(err) is None:
            return  # on its way through the session's events
        await self.send(dg.ErrorMsg(variant=err.code.value, description=err.message))
        if err.fatal or not self.started:
            await self.ws.close(1008 if err.code != ErrorCode.internal else 1011, err.code.value)

    async def run(self) -> None:
        try:
            self.stream()
            while True:
                msg = await self.ws.receive()
                if msg["type"] == "websocket.disconnect":
                    break
                try:
                    await self.handle(msg)
                except HubError as e:
                    await self.report(e)
                except Exception as e:  # one bad message never takes the connection down silently
                    await self.report(self.bind.internal(e, "message"))
        except (WebSocketDisconnect, RuntimeError):
            pass
        finally:
            await self.close()

    async def close(self) -> None:
        """No resume on Deepgram's wire: a client gone ends its session."""
        if self.bind.remote is None and self.bind.live:
            with contextlib.suppress(HubError):
                self.bind.service.abort(self.bind.session_id)
        else:
            self.bind.detach()
        if self.sender is not None and not self.sender.done():
            self.sender.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.sender


@router.websocket("/v1/listen")
async def listen_endpoint(ws: WebSocket) -> None:
    request_id = str(uuid.uuid4())
    try:
        params = dg.parse_params(list(ws.query_params.multi_items()), dg.ListenParams)
        start, provider = plan(ws.app.state.hub, params)
    except dg.ListenRefused as e:
        await ws.send_denial_response(dg.refusal(e, request_id))
        return
    conn = ListenConnection(ws, params, start, provider, request_id)
    if params.encoding is not None:
        try:
            await conn.open()
        except HubError as e:
            code = e.code.value.upper() if e.code != ErrorCode.invalid_command else "INVALID_QUERY_PARAMETER"
            await ws.send_denial_response(dg.refusal(dg.ListenRefused(e.http_status, code, e.message), request_id))
            return
    offered = [p.strip().lower() for p in ws.headers.get("sec-websocket-protocol", "").split(",")]
    try:
        await ws.accept(subprotocol=offered[0] if offered[0] in ("token", "bearer") else None,
                        headers=[(b"dg-request-id", request_id.encode())])
    except BaseException:
        await conn.close()
        raise
    await conn.run()
