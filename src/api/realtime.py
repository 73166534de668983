"""OpenAI Realtime API transcription, GET /v1/realtime?intent=transcription (DESIGN §3.8).

A thin transport over the SessionService, speaking what the official `openai` client's
`client.realtime.connect(...)` speaks (event shapes in realtime_events):

- `session.update` (GA, `session.type: "transcription"`) or the beta `transcription_session.update` sets the
  input format (audio/pcm 24 kHz, audio/pcmu, audio/pcma), the transcription model (an OpenAI alias or a hub
  provider) and language, and `turn_detection`: `server_vad` (silence_duration_ms -> vad.silence_ms,
  prefix_padding_ms -> vad.pre_roll_ms, threshold -> vad.threshold) or null (manual commit, VAD off).
- `input_audio_buffer.append` feeds a hub session, started on the first append after each (re)configuration.
- Each hub utterance is given its conversation item when the append that opens it is taken (server_vad: an
  item per utterance; manual: the item being appended to), so what a later `clear` or `commit` does to it
  is decided in the order of the client's events, never by when the hub's results come.
- server_vad: speech.started -> `input_audio_buffer.speech_started`, speech.ended -> `.speech_stopped` +
  `.committed`. manual: `input_audio_buffer.commit` -> `.committed` and a flush.
- After `.committed`, the item's settled text (finals, then the open utterance's stable text, which every
  later text starts with) goes out as `conversation.item.input_audio_transcription.delta` events as it
  grows, the rest of the transcript as the last delta, then `.completed` (realtime_items: the deltas
  concatenate to the transcript by construction).
- `input_audio_buffer.clear` drops the uncommitted audio: its item is marked dropped at once, the hub session
  is stopped (committed items still get their transcripts) and nothing of the dropped item is sent.
- `session.update` checks every field against the hub's own ranges before anything changes (realtime_events
  `validate`); a refused update is an `error` naming the field and the session keeps its configuration.
An item whose audio decodes to no text (noise) gets a `.completed` with an empty transcript once the session
has no final pending.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field

from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from pydantic import BaseModel

from ..core.errors import ErrorCode, HubError
from ..core.events import (
    ErrorEvent,
    SessionEnded,
    SpeechEnded,
    SpeechStarted,
    TranscriptFinal,
    TranscriptPartial,
)
from ..engine.service import SessionService
from ..engine.session import Session
from ..providers.checks import validate_features, validate_language
from . import realtime_events as rt
from .binding import open_session
from .openai_models import resolve_model, routed_start
from .realtime_items import Item

log = logging.getLogger(__name__)
router = APIRouter()


@dataclass(eq=False)
class HubRun:
    """One hub session of this connection and which conversation item each of its utterances is."""

    session: Session
    serial: int                                          # tells the runs' utterance ids apart in an item
    base_ms: int                                         # audio before this run, in the connection's timeline
    manual: bool
    items: dict[str, Item] = field(default_factory=dict)  # utterance id -> its item (mapped as audio arrives)
    mapped: int = 0                                      # utterances mapped so far (u1 .. u<mapped>)
    starts: int = 0                                      # speech.started / .ended events the pump has seen
    ends: int = 0
    speech_ms: dict[str, int] = field(default_factory=dict)  # utterance id -> its speech start (server_vad)
    seen_seq: int = 0                                    # the last hub event the pump has handled
    seen: asyncio.Event = field(default_factory=asyncio.Event)
    pump: asyncio.Task[None] | None = None


class RealtimeConnection:
    def __init__(self, ws: WebSocket, service: SessionService, model: str | None) -> None:
        self.ws = ws
        self.service = service
        self.cfg = rt.TranscriptionConfig(model=model or "whisper-1")
        self.run: HubRun | None = None
        self.runs: set[HubRun] = set()
        self.serial = 0
        self.audio_s = 0.0                 # audio received on this connection (the Realtime timeline)
        self.current: Item | None = None   # manual mode: the item being appended to (uncommitted audio)
        self.previous_item: str | None = None
        self.watchers: set[asyncio.Task[None]] = set()
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
        """Every field is checked before anything changes: a refused update leaves the session as it was."""
        prefix = "session.input_audio_transcription" if cfg.beta else "session.audio.input.transcription"
        hub = self.ws.app.state.hub
        try:
            resolve_model(hub, cfg.model)
        except HubError as e:  # an unknown model is refused now, not at the first audio
            raise rt.RealtimeProblem(e.message, f"{prefix}.model", code=e.code) from None
        try:
            provider = resolve_model(hub, cfg.model, cfg.language)  # the route for that language
            validate_language(provider, cfg.language or provider.language)
        except HubError as e:
            raise rt.RealtimeProblem(e.message, f"{prefix}.language", code=e.code) from None
        try:
            validate_features(provider, prompt=cfg.prompt)
        except HubError as e:
            raise rt.RealtimeProblem(e.message, f"{prefix}.prompt", code=e.code) from None
        if cfg.logprobs:
            raise rt.RealtimeProblem("item.input_audio_transcription.logprobs is not available on the realtime "
                                     "socket (use POST /v1/audio/transcriptions with include[]=logprobs)",
                                     "session.include")
        self.end_run()  # a running hub session finishes under the old settings
        if cfg.server_vad and self.current is not None:
            await self.commit_item()  # manual audio not yet committed is one item (turn detection takes over)
        self.cfg = cfg
        await self.send(rt.session_event(cfg, created=False))

    async def start_run(self) -> HubRun:
        cfg = self.cfg
        provider = resolve_model(self.ws.app.state.hub, cfg.model, cfg.language)
        start = routed_start(self.ws.app.state.hub, cfg.model, cfg.start(provider.name))  # whisper-1: by language
        session = await open_session(self.service, start, "realtime",
                                     self.ws.scope.get("asrhub.api_key"))
        self.serial += 1
        run = HubRun(session, self.serial, round(self.audio_s * 1000), manual=not cfg.server_vad)
        run.pump = asyncio.create_task(self.pump(run))
        self.runs.add(run)
        return run

    def end_run(self) -> None:
        run, self.run = self.run, None
        if run is not None and self.service.is_open(run.session.id):
            self.service.stop(run.session.id)  # finalises the open utterance: map it before the pump sees it
            self.map_utterances(run)

    def map_utterances(self, run: HubRun, seconds: float = 0.0) -> None:
        """Give the run's new utterances their items, right as the audio that opened them is taken (so a
        later `clear` or commit can never move them): manual mode, the current item; server_vad, one new
        item each."""
        if run.manual and self.current is not None:
            self.current.audio_s += seconds
        for n in range(run.mapped + 1, run.session.utterance_index + 1):
            uid = f"u{n}"
            item = self.current if run.manual else Item(rt.item_id())
            if item is None:  # manual audio with no item (cannot be: append makes one first)
                continue
            item.parts.append((run.serial, uid))
            run.items[uid] = item
        run.mapped = max(run.mapped, run.session.utterance_index)

    async def append(self, data: bytes) -> None:
        if self.cfg.format == "audio/pcm" and len(data) % 2:
            raise rt.RealtimeProblem("audio/pcm audio must be whole 16-bit samples (an even number of bytes)",
                                     "audio", code=ErrorCode.invalid_audio)
        if not data:
            return
        if self.run is None or not self.service.is_open(self.run.session.id):
            self.run = await self.start_run()
        if self.run.manual and self.current is None:
            self.current = Item(rt.item_id())
        seconds = rt.INPUT_AUDIO[self.cfg.format].seconds(len(data))
        try:
            self.service.push_audio(self.run.session.id, data)
        except BaseException:
            self.map_utterances(self.run)  # what the refused audio's part of the push opened, if anything
            raise
        self.map_utterances(self.run, seconds)
        self.audio_s += seconds

    async def commit(self) -> None:
        if self.cfg.server_vad:
            raise rt.RealtimeProblem("input_audio_buffer.commit is for turn_detection null; with server_vad the "
                                     "hub commits at the end of each utterance", "type")
        if self.current is None or self.current.audio_s <= 0:
            raise rt.RealtimeProblem("the input audio buffer is empty: append audio before committing", None)
        run = self.run
        if run is not None and self.service.is_open(run.session.id):
            self.service.flush(run.session.id)
            self.map_utterances(run)
        await self.commit_item()

    async def commit_item(self) -> None:
        item, self.current = self.current, None
        if item is None:
            return
        await self.committed(item)
        self.watch(item)

    async def committed(self, item: Item) -> None:
        item.committed = True
        await self.send(rt.committed(item.id, self.previous_item))
        self.previous_item = item.id
        if piece := item.next_delta():  # what the partials settled on while the audio came
            await self.send(rt.delta(item.id, piece))

    async def clear(self) -> None:
        """Drops the uncommitted audio, ordered with the appends before it: the utterances it opened are
        marked now, so nothing the hub still decodes from it is ever sent."""
        run = self.run
        if run is not None:
            open_utt = run.session.open_utterance
            if not run.manual and open_utt is not None and open_utt[0] in run.items:
                run.items[open_utt[0]].dropped = True
            self.end_run()
        if self.current is not None:
            self.current.dropped = True
        self.current = None
        await self.send(rt.cleared())

    # -- hub events -> Realtime events -------------------------------------------------------
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
            run.seen.set()

    async def on_event(self, run: HubRun, ev: object) -> None:
        if isinstance(ev, SpeechStarted):
            run.starts += 1
            uid = f"u{run.starts}"
            run.speech_ms[uid] = ev.offset_ms
            item = run.items.get(uid)
            if item is not None and item.live and not run.manual:
                await self.send(rt.speech_started(item.id, run.base_ms + ev.offset_ms))
        elif isinstance(ev, SpeechEnded):
            run.ends += 1
            uid = f"u{run.ends}"
            item = run.items.get(uid)
            if item is None or not item.live or run.manual:
                return
            item.audio_s = max(0, ev.offset_ms - run.speech_ms.get(uid, ev.offset_ms)) / 1000.0
            await self.send(rt.speech_stopped(item.id, run.base_ms + ev.offset_ms))
            await self.committed(item)
            self.watch(item)
            await self.complete_if_final(item)
        elif isinstance(ev, TranscriptPartial | TranscriptFinal):
            item = run.items.get(ev.utterance_id)
            if item is None or not item.live:
                return
            part = (run.serial, ev.utterance_id)
            if isinstance(ev, TranscriptPartial):
                item.stable[part] = ev.stable_text.strip()
            else:
                item.finals[part] = ev.text.strip()
            if item.committed and (piece := item.next_delta()):
                await self.send(rt.delta(item.id, piece))
            await self.complete_if_final(item)
        elif isinstance(ev, ErrorEvent):
            await self.send(rt.realtime_error(HubError(ev.code, ev.message, fatal=ev.fatal)))

    async def complete_if_final(self, item: Item) -> None:
        if item.committed and item.live and item.finished():
            await self.complete(item)

    async def complete(self, item: Item) -> None:
        piece, transcript = item.close()
        if piece:
            await self.send(rt.delta(item.id, piece))
        await self.send(rt.completed(item.id, transcript, item.audio_s))

    def watch(self, item: Item) -> None:
        watcher = asyncio.create_task(self.complete_when_settled(item))
        self.watchers.add(watcher)
        watcher.add_done_callback(self.watchers.discard)

    async def complete_when_settled(self, item: Item) -> None:
        """An utterance that decodes to no text has no final event: once each run of the item has no final
        pending and its pump has handled every event emitted until then, an item still without
        `...completed` gets one with the finals it has (an empty transcript for silence, as OpenAI sends)."""
        with contextlib.suppress(WebSocketDisconnect, RuntimeError, OSError):
            for serial in dict.fromkeys(s for s, _ in item.parts):
                run = next((r for r in self.runs if r.serial == serial), None)
                if run is None:
                    continue  # that run has ended: its pump handled all of it
                await run.session.settled.wait()
                target = run.session.channel.last_seq
                while run.seen_seq < target and run.pump is not None and not run.pump.done():
                    run.seen.clear()
                    await run.seen.wait()
            if item.committed and item.live:
                await self.complete(item)

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
        tasks = [*(run.pump for run in self.runs), *self.watchers]
        for task in tasks:
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
