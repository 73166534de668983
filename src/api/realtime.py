"""OpenAI Realtime API transcription, GET /v1/realtime?intent=transcription (DESIGN §3.8).

A thin transport over the SessionService, speaking what the official `openai` client's
`client.realtime.connect(...)` speaks (event shapes in realtime_events):

- `session.update` (GA, `session.type: "transcription"`) or the beta `transcription_session.update` sets the
  input format (audio/pcm 24 kHz, audio/pcmu, audio/pcma), the transcription model (an OpenAI alias or a hub
  provider) and language, and `turn_detection`: `server_vad` (silence_duration_ms -> vad.silence_ms,
  prefix_padding_ms -> vad.pre_roll_ms, threshold -> vad.threshold) or null (manual commit, VAD off).
- `input_audio_buffer.append` feeds a hub session, started on the first append after each (re)configuration.
- server_vad: each hub utterance is one conversation item: speech.started -> `input_audio_buffer.speech_started`,
  speech.ended -> `.speech_stopped` + `.committed`; partials (their stable text) and the final become
  `conversation.item.input_audio_transcription.delta` events, the final also `.completed`.
- manual: `input_audio_buffer.commit` -> `.committed` and a flush; the utterance's text follows as above.
- `input_audio_buffer.clear` drops the uncommitted audio: the hub session is stopped (committed items still
  get their transcripts) and the open item's results are discarded.
An utterance that decodes to no text (noise) gets a `.completed` with an empty transcript once the session
has no final pending.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from dataclasses import dataclass, field

from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from pydantic import BaseModel

from ..core.commands import StartSession, VadOptions
from ..core.errors import ErrorCode, HubError
from ..core.events import (
    ErrorEvent,
    SessionEnded,
    SpeechEnded,
    SpeechStarted,
    TranscriptFinal,
    TranscriptPartial,
)
from ..core.service import SessionService
from ..core.session import Session
from . import realtime_events as rt
from .binding import open_session
from .openai_models import resolve_model

log = logging.getLogger(__name__)
router = APIRouter()


@dataclass(eq=False)
class HubRun:
    """One hub session of this connection and how its utterances map onto conversation items."""

    session: Session
    base_ms: int                                              # audio before this run, in the connection's timeline
    manual: bool
    items_by_start: list[str] = field(default_factory=list)  # item of the n-th speech start (manual: current item)
    emitted: dict[str, str] = field(default_factory=dict)    # utterance id -> text sent as deltas
    dropped: set[str] = field(default_factory=set)           # cleared items: their results are discarded
    completed: set[str] = field(default_factory=set)         # items whose `...completed` went out
    start_ms: dict[str, int] = field(default_factory=dict)   # item -> its speech start (session timeline)
    seen_seq: int = 0                                        # the last hub event the pump has handled
    seen: asyncio.Event = field(default_factory=asyncio.Event)
    pump: asyncio.Task[None] | None = None
    watchers: set[asyncio.Task[None]] = field(default_factory=set)


class RealtimeConnection:
    def __init__(self, ws: WebSocket, service: SessionService, model: str | None) -> None:
        self.ws = ws
        self.service = service
        self.cfg = rt.TranscriptionConfig(model=model or "whisper-1")
        self.run: HubRun | None = None
        self.runs: set[HubRun] = set()
        self.audio_s = 0.0                 # audio received on this connection (the Realtime timeline)
        self.uncommitted_bytes = 0
        self.current_item: str | None = None   # manual mode: the item being appended to
        self.previous_item: str | None = None
        self.send_lock = asyncio.Lock()

    async def send(self, ev: BaseModel) -> None:
        async with self.send_lock:
            await self.ws.send_text(rt.to_wire(ev))

    # -- client events ---------------------------------------------------------------------
    async def handle(self, ev: rt.ClientEvent) -> None:
        if isinstance(ev, rt.SessionUpdate):
            await self.configure(ev.config)
        elif isinstance(ev, rt.Append):
            await self.append(ev.audio)
        elif isinstance(ev, rt.Commit):
            await self.commit()
        else:
            await self.clear()

    async def configure(self, cfg: rt.TranscriptionConfig) -> None:
        resolve_model(self.ws.app.state.hub, cfg.model)  # an unknown model is refused now, not at the first audio
        if cfg.logprobs:
            raise rt.RealtimeProblem("item.input_audio_transcription.logprobs is not available on the realtime "
                                     "socket (use POST /v1/audio/transcriptions with include[]=logprobs)",
                                     "session.include")
        self.end_run()  # a running hub session finishes under the old settings
        self.cfg = cfg
        await self.send(rt.session_event(cfg, created=False))

    async def start_run(self) -> HubRun:
        cfg = self.cfg
        provider = resolve_model(self.ws.app.state.hub, cfg.model, cfg.language)
        vad = VadOptions(enabled=cfg.server_vad, silence_ms=cfg.silence_ms, pre_roll_ms=cfg.prefix_ms,
                         threshold=cfg.threshold)
        start = StartSession(provider=provider.name, language=cfg.language,
                             audio=rt.INPUT_AUDIO[cfg.format].spec(),
                             interim_results=True, vad=vad, prompt=cfg.prompt or None)
        session = await open_session(self.service, start, "realtime", self.ws.scope.get("asrhub.api_key"))
        run = HubRun(session, round(self.audio_s * 1000), manual=not cfg.server_vad)
        run.pump = asyncio.create_task(self.pump(run))
        self.runs.add(run)
        return run

    def end_run(self) -> None:
        run, self.run = self.run, None
        if run is not None and self.service.is_open(run.session.id):
            self.service.stop(run.session.id)

    async def append(self, data: bytes) -> None:
        if self.cfg.format == "audio/pcm" and len(data) % 2:
            raise rt.RealtimeProblem("audio/pcm audio must be whole 16-bit samples (an even number of bytes)",
                                     "audio", code=ErrorCode.invalid_audio)
        if not data:
            return
        if self.run is None or not self.service.is_open(self.run.session.id):
            self.run = await self.start_run()
        if self.current_item is None:
            self.current_item = rt.item_id()
        self.service.push_audio(self.run.session.id, data)
        self.uncommitted_bytes += len(data)
        self.audio_s += rt.INPUT_AUDIO[self.cfg.format].seconds(len(data))

    async def commit(self) -> None:
        if self.cfg.server_vad:
            raise rt.RealtimeProblem("input_audio_buffer.commit is for turn_detection null; with server_vad the "
                                     "hub commits at the end of each utterance", "type")
        if self.run is None or self.uncommitted_bytes == 0 or self.current_item is None:
            raise rt.RealtimeProblem("the input audio buffer is empty: append audio before committing", None)
        item, self.current_item = self.current_item, None
        self.uncommitted_bytes = 0
        await self.send(rt.committed(item, self.previous_item))
        self.previous_item = item
        self.service.flush(self.run.session.id)

    async def clear(self) -> None:
        run = self.run
        if run is not None:
            if run.manual and self.current_item is not None:
                run.dropped.add(self.current_item)
            elif not run.manual and run.session.open_utterance is not None and run.items_by_start:
                run.dropped.add(run.items_by_start[-1])
            self.end_run()
        self.current_item = None
        self.uncommitted_bytes = 0
        await self.send(rt.cleared())

    # -- hub events -> Realtime events -------------------------------------------------------
    def _item(self, run: HubRun, utterance_id: str) -> str | None:
        m = re.fullmatch(r"u(\d+)", utterance_id)
        n = int(m.group(1)) - 1 if m else len(run.items_by_start) - 1
        return run.items_by_start[n] if 0 <= n < len(run.items_by_start) else None

    def _delta(self, run: HubRun, uid: str, text: str) -> str:
        done = run.emitted.get(uid, "")
        text = text.strip()
        if len(text) <= len(done) or not text.startswith(done):
            return ""
        run.emitted[uid] = text
        return text[len(done):] if done else text

    async def pump(self, run: HubRun) -> None:
        try:
            async for ev in self.service.events(run.session.id):
                await self.on_event(run, ev)
                run.seen_seq = ev.seq
                run.seen.set()
                if isinstance(ev, SessionEnded):
                    break
        except (WebSocketDisconnect, RuntimeError, OSError):
            pass
        finally:
            self.runs.discard(run)

    async def on_event(self, run: HubRun, ev: object) -> None:
        if isinstance(ev, SpeechStarted):
            if run.manual:
                item = self.current_item or rt.item_id()
                self.current_item = item
            else:
                item = rt.item_id()
            run.items_by_start.append(item)
            run.start_ms.setdefault(item, ev.offset_ms)
            if not run.manual:
                await self.send(rt.speech_started(item, run.base_ms + ev.offset_ms))
        elif isinstance(ev, SpeechEnded) and run.items_by_start:
            item = run.items_by_start[-1]
            if item in run.dropped:
                return
            watcher = asyncio.create_task(self.complete_if_silent(run, item, ev.offset_ms))
            run.watchers.add(watcher)
            watcher.add_done_callback(run.watchers.discard)
            if run.manual:
                return
            await self.send(rt.speech_stopped(item, run.base_ms + ev.offset_ms))
            await self.send(rt.committed(item, self.previous_item))
            self.previous_item = item
        elif isinstance(ev, TranscriptPartial | TranscriptFinal):
            found = self._item(run, ev.utterance_id)
            if found is None or found in run.dropped:
                return
            item = found
            text = ev.stable_text if isinstance(ev, TranscriptPartial) else ev.text
            if piece := self._delta(run, ev.utterance_id, text):
                await self.send(rt.delta(item, piece))
            if isinstance(ev, TranscriptFinal):
                run.completed.add(item)
                await self.send(rt.completed(item, ev.text.strip(), (ev.end_ms - ev.start_ms) / 1000.0))
        elif isinstance(ev, ErrorEvent):
            await self.send(rt.realtime_error(HubError(ev.code, ev.message, fatal=ev.fatal)))

    async def complete_if_silent(self, run: HubRun, item: str, end_ms: int) -> None:
        """An utterance that decodes to no text has no final event: once the session has no final
        pending and the pump has handled every event emitted until then, an item still without
        `...completed` gets one with an empty transcript (as OpenAI sends for silence)."""
        with contextlib.suppress(WebSocketDisconnect, RuntimeError, OSError):
            await run.session.settled.wait()
            target = run.session.channel.last_seq
            while run.seen_seq < target and run.pump is not None and not run.pump.done():
                run.seen.clear()
                await run.seen.wait()
            if item not in run.completed and item not in run.dropped:
                run.completed.add(item)
                await self.send(rt.completed(item, "", max(0, end_ms - run.start_ms.get(item, end_ms)) / 1000.0))

    # -- the connection ----------------------------------------------------------------------
    async def serve(self) -> None:
        await self.send(rt.session_event(self.cfg, created=True))
        try:
            while True:
                msg = await self.ws.receive()
                if msg["type"] == "websocket.disconnect":
                    break
                text = msg.get("text")
                if text is None:
                    text = msg.get("bytes")
                if text is None:
                    continue
                try:
                    ev = rt.parse_client_event(text, self.cfg)
                    try:
                        await self.handle(ev)
                    except HubError as e:
                        e.client_event_id = getattr(e, "client_event_id", None) or ev.event_id  # type: ignore
                        raise
                except HubError as e:
                    await self.send(rt.realtime_error(e))
                except Exception as e:  # one bad event never takes the connection down
                    log.exception("realtime event failed")
                    await self.send(rt.realtime_error(HubError(ErrorCode.internal, f"internal error: "
                                                               f"{type(e).__name__}")))
        except (WebSocketDisconnect, RuntimeError):
            pass
        finally:
            await self.close()

    async def close(self) -> None:
        for run in list(self.runs):
            if self.service.is_live(run.session.id):
                self.service.abort(run.session.id)
            for task in [run.pump, *run.watchers]:
                if task is not None and not task.done():
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task


@router.websocket("/v1/realtime")
async def realtime_endpoint(ws: WebSocket) -> None:
    await ws.accept()
    intent = ws.query_params.get("intent")
    model = ws.query_params.get("model")
    if model is not None:  # the URL may name a conversation model (gpt-realtime): transcribe with the default
        try:
            resolve_model(ws.app.state.hub, model)
        except HubError:
            model = None
    conn = RealtimeConnection(ws, ws.app.state.hub.service, model)
    if intent not in (None, "transcription"):
        await conn.send(rt.realtime_error(rt.RealtimeProblem(
            f"intent '{intent}' is not served: this hub offers transcription sessions (?intent=transcription)",
            "intent")))
        await ws.close(1008)
        return
    await conn.serve()
