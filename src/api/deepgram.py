"""Deepgram-compatible live transcription, GET /v1/listen (DESIGN §3.8): a thin transport over the
SessionService and SessionBinding, speaking Deepgram's streaming API (wire models in deepgram_wire).

- The query string configures one hub session: `model` (a hub provider, an OpenAI alias, or a Deepgram
  model name, which leaves the choice to the hub), `language` (`multi` -> detection), `encoding` +
  `sample_rate` + `channels` (none: containerised audio, its container sniffed from the first bytes),
  `interim_results` -> partials, `endpointing` (ms -> vad.silence_ms; false -> no VAD: utterances end only
  at Finalize / CloseStream), `keywords`/`keyterm` -> hotwords (or the prompt where the provider takes
  no hotwords). A refused parameter is an HTTP 400 at the handshake, as Deepgram answers it.
- `multichannel=true` with `channels` > 1 (raw audio): each channel is its own hub session (admission counts
  each), its samples split out of the interleaved frames; its messages carry `channel_index` [i, channels].
- Binary frames are audio (an empty one ends the stream, as Deepgram's legacy close does); text frames are
  `KeepAlive` -> keepalive, `Finalize` -> flush (of one channel, when it names one), `CloseStream` -> stop;
  `Configure` is answered `ConfigureFailure` (keyterms are fixed when the stream opens).
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
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from pydantic import BaseModel, ValidationError

from ..core.commands import AudioSpec, StartSession
from ..core.errors import ClientError, ErrorCode, HubError
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

@dataclass
class ChannelSession:
    """One channel's hub session on a connection (one, unless multichannel splits the audio)."""

    index: int
    bind: SessionBinding
    sender: asyncio.Task[None] | None = None
    finalizes: int = 0  # Finalize messages whose final has not gone out
    ends: int = 0
    end_reasons: dict[str, str] = field(default_factory=dict)  # utterance id -> how its speech ended
    audio_ms: int | None = None  # its audio, once the session has ended


class ListenConnection:
    def __init__(self, ws: WebSocket, params: dg.ListenParams, start: StartSession, provider: Provider,
                 request_id: str) -> None:
        self.ws = ws
        self.params = params
        self.start_cmd = start
        self.provider = provider.name
        self.info = dg.ModelInfo(name=provider.name, version=provider.model, arch="asrhub")
        self.request_id = request_id
        self.hub = ws.app.state.hub
        self.api_key = ws.scope.get("asrhub.api_key")
        self.count = params.channels if params.split and params.channels else 1  # transcripts (sessions)
        self.channels: list[ChannelSession] = []
        self.pumped = 0  # sessions whose events have all gone out
        self.carry = b""  # the bytes of a sample frame split across messages
        self.send_lock = asyncio.Lock()
        self.created = datetime.datetime.now(datetime.UTC).isoformat().replace("+00:00", "Z")

    @property
    def started(self) -> bool:
        return bool(self.channels)

    async def send(self, msg: BaseModel) -> None:
        async with self.send_lock:
            await self.ws.send_text(msg.model_dump_json())

    def meta(self) -> dg.ResultMetadata:
        return dg.ResultMetadata(request_id=self.request_id, model_info=self.info,
                                 model_uuid=dg.model_uuid(self.provider))

    # -- hub events -> Deepgram messages ------------------------------------------------------
    async def on_event(self, ch: ChannelSession, ev: Event) -> bool | None:
        where = [ch.index, self.count]
        if isinstance(ev, SessionStarted):
            self.provider = ev.provider
            self.info = dg.ModelInfo(name=ev.provider, version=self.info.version, arch="asrhub")
        elif isinstance(ev, SpeechStarted) and self.params.vad_events:
            await self.send(dg.SpeechStartedMsg(channel=where, timestamp=ev.offset_ms / 1000))
        elif isinstance(ev, SpeechEnded):
            ch.ends += 1
            ch.end_reasons[f"u{ch.ends}"] = ev.reason
        elif isinstance(ev, TranscriptPartial):
            await self.send(self.results(ch, ev.text, [], ev.start_ms, ev.end_ms, final=False))
        elif isinstance(ev, TranscriptFinal):
            await self.final(ch, ev)
        elif isinstance(ev, ErrorEvent):
            await self.send(dg.ErrorMsg(variant=ev.code, description=ev.message))
        elif isinstance(ev, SessionEnded):
            ch.audio_ms = ev.stats.audio_ms
            if all(c.audio_ms is not None for c in self.channels):  # the last channel's end: the stream's
                await self.metadata(max(c.audio_ms or 0 for c in self.channels))
        return None

    async def metadata(self, audio_ms: int) -> None:
        uid = dg.model_uuid(self.provider)
        channels = self.count if self.params.split else self.start_cmd.audio.channels
        await self.send(dg.Metadata(request_id=self.request_id, sha256="", created=self.created,
                                    duration=audio_ms / 1000, channels=channels, models=[uid],
                                    model_info={uid: self.info}))

    async def final(self, ch: ChannelSession, ev: TranscriptFinal) -> None:
        reason = ch.end_reasons.pop(ev.utterance_id, None)
        speech_final = ev.end_of_turn if ev.end_of_turn is not None else reason in ("silence", "turn", "max_silence")
        words = [dg.DgWord(word=dg.plain(w.word) or w.word.strip(), start=w.start_ms / 1000, end=w.end_ms / 1000,
                           confidence=w.confidence,
                           punctuated_word=w.word.strip() if self.params.punctuated else dg.plain(w.word))
                 for w in ev.words or [] if w.word.strip()]
        msg = self.results(ch, ev.text, words, ev.start_ms, ev.end_ms, final=True)
        msg.speech_final = speech_final
        msg.from_finalize = reason == "flush" and ch.finalizes > 0  # a stop flushes too: that is not one
        if msg.from_finalize:
            ch.finalizes -= 1
        await self.send(msg)
        if speech_final and self.params.utterance_end_ms is not None:
            last = words[-1].end if words else ev.end_ms / 1000
            await self.send(dg.UtteranceEnd(channel=[ch.index, self.count], last_word_end=last))

    def results(self, ch: ChannelSession, text: str, words: list[dg.DgWord], start_ms: int, end_ms: int, *,
                final: bool) -> dg.Results:
        transcript = text.strip() if self.params.punctuated else dg.plain(text)
        confidence = sum(w.confidence for w in words) / len(words) if words else (1.0 if transcript else 0.0)
        alt = dg.Alternative(transcript=transcript, confidence=round(confidence, 4), words=words)
        return dg.Results(channel_index=[ch.index, self.count], duration=max(0, end_ms - start_ms) / 1000,
                          start=start_ms / 1000, is_final=final, speech_final=False,
                          channel=dg.Channel(alternatives=[alt]), metadata=self.meta())

    async def pump(self, ch: ChannelSession) -> None:
        try:
            ended = await ch.bind.pump(lambda ev: self.on_event(ch, ev), 0)
            self.pumped += 1
            if ch.bind.moved:
                await self.ws.close(1012, "session moved")
            elif ended and self.pumped == len(self.channels):
                await self.ws.close(1000)
        except (WebSocketDisconnect, RuntimeError, OSError):
            pass

    # -- client messages -----------------------------------------------------------------------
    async def open(self, audio: AudioSpec | None = None) -> None:
        """Start the hub session(s) (raw audio: before the handshake is answered, so a refusal is its HTTP
        status, as Deepgram's are; containerised audio: at its first bytes). multichannel: one session per
        channel, all or none."""
        cmd = self.start_cmd if audio is None else self.start_cmd.model_copy(update={"audio": audio})
        self.start_cmd = cmd
        if self.params.split:
            cmd = cmd.model_copy(update={"audio": cmd.audio.model_copy(update={"channels": 1})})
        opened: list[ChannelSession] = []
        try:
            for i in range(self.count):
                ch = ChannelSession(i, SessionBinding(self.hub.service, "deepgram", self.api_key))
                await ch.bind.start(cmd)
                opened.append(ch)
        except BaseException:
            for ch in opened:
                self.abort(ch)
            raise
        self.channels = opened

    def stream(self) -> None:
        for ch in self.channels:
            if ch.sender is None:
                ch.sender = asyncio.create_task(self.pump(ch))

    def targets(self, channel: int | None) -> list[ChannelSession]:
        """The channels a command is for (all, or the one a Finalize names), those still open."""
        if channel is not None and channel >= self.count:
            raise ClientError(ErrorCode.invalid_command, f"channel {channel}: this stream has {self.count} "
                              f"channel{'s' if self.count > 1 else ''} (0 to {self.count - 1})")
        chosen = self.channels if channel is None else [self.channels[channel]]
        return [ch for ch in chosen if ch.bind.is_open()]

    async def handle(self, msg: Mapping[str, Any]) -> None:
        data = msg.get("bytes")
        if isinstance(data, bytes):
            if not data:  # Deepgram's legacy end of stream
                for ch in self.targets(None):
                    ch.bind.stop()
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
                "| \"CloseStream\" | \"Configure\"}")))
            return
        if cmd.type == "Configure":
            await self.send(dg.ConfigureFailure(request_id=self.request_id))
            return
        if not self.started:  # nothing streamed yet (containerised audio starts at its first bytes)
            if cmd.type == "CloseStream":  # no audio at all: the end of an empty stream
                await self.metadata(0)
                await self.ws.close(1000)
            return
        if cmd.type == "KeepAlive":
            for ch in self.targets(None):
                ch.bind.keepalive()
        elif cmd.type == "Finalize":
            for ch in self.targets(cmd.channel):
                ch.bind.flush()
                ch.finalizes += 1
        else:
            for ch in self.targets(None):
                ch.finalizes = 0
                ch.bind.stop()

    def push(self, data: bytes) -> None:
        """Raw samples may be split anywhere across Deepgram's binary frames: the hub gets whole frames, a
        split one's bytes wait for the next message. multichannel: each channel's samples to its session."""
        sample = SAMPLE_BYTES.get(self.start_cmd.audio.encoding, 0)
        width = sample * self.start_cmd.audio.channels
        if width > 1:
            data = self.carry + data
            cut = len(data) - len(data) % width
            data, self.carry = data[:cut], data[cut:]
            if not data:
                return
        if not self.params.split:
            self.channels[0].bind.audio(data)
            return
        limit = self.hub.service.config.limits.max_message_bytes
        if len(data) > limit:  # as one session would refuse it
            raise ClientError(ErrorCode.payload_too_large, f"audio message of {len(data)} bytes exceeds the "
                              f"limit of {limit}")
        frames = np.frombuffer(data, dtype=np.dtype(f"V{sample}")).reshape(-1, self.count)
        for ch in self.channels:
            ch.bind.audio(frames[:, ch.index].tobytes())

    async def report(self, err: HubError) -> None:
        """An error the client's message caused: through the (first live) session's events, or sent here when
        no session is live; a fatal one ends every channel's session."""
        live = [ch for ch in self.channels if ch.bind.live]
        if live:
            for ch in live if err.fatal else live[:1]:
                ch.bind.fail(err)
            return
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
                    log.exception("deepgram message failed")
                    await self.report(HubError(ErrorCode.internal, f"internal error: {type(e).__name__}"))
        except (WebSocketDisconnect, RuntimeError):
            pass
        finally:
            await self.close()

    def abort(self, ch: ChannelSession) -> None:
        """No resume on Deepgram's wire: a client gone ends its session."""
        if ch.bind.remote is None and ch.bind.live:
            with contextlib.suppress(HubError):
                ch.bind.service.abort(ch.bind.session_id)
        else:
            ch.bind.detach()

    async def close(self) -> None:
        for ch in self.channels:
            self.abort(ch)
        for ch in self.channels:
            if ch.sender is not None and not ch.sender.done():
                ch.sender.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await ch.sender


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
