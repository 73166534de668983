"""`stream=true` on POST /v1/audio/transcriptions: OpenAI's SSE of `transcript.text.delta` events and one
`transcript.text.done`, produced WHILE decoding.

The decoded file is streamed through an ordinary hub session (the same SessionService every transport
uses): its VAD cuts utterances and each utterance's final becomes a delta as soon as it is decoded. The
session runs without partials: audio pushed faster than real time never forms stable text, and their
decodes would only slow the finals down (measured on a 53 s file: 21 s with partials, 9-11 s without, on a
loaded 2-core machine). `_Utterances` still turns stable text into append-only deltas should partials come. Audio is
pushed as fast as the session decodes it, but never while a final is pending (`Session.settled`): a burst
of queued finals would make the hub's results trail its audio and trip admission control for every client.
The session's ring buffer holds the open utterance, which the endpointer cuts at `max_utterance_s`.

With `include[]=logprobs` the file is decoded piece by piece instead (session finals carry no token
log-probabilities): each piece's text and logprobs go out as soon as that piece is decoded."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import numpy as np

from ..core.audio import HUB_RATE
from ..core.commands import AudioSpec, StartSession, VadOptions
from ..core.errors import HubError
from ..core.events import ErrorEvent, SessionEnded, TranscriptFinal, TranscriptPartial
from ..engine.service import SessionService
from ..engine.session import Session
from ..engine.transcribe import SplitOptions, split_at_pauses
from ..providers.base import Provider, TokenLogprob, TranscribeOptions
from .openai_wire import Logprob, StreamDelta, StreamDone

CHUNK_S = 0.5


@dataclass
class _Utterances:
    """Append-only text out of cumulative partials and finals."""

    emitted: dict[str, str] = field(default_factory=dict)  # utterance id -> text already sent
    finals: list[str] = field(default_factory=list)

    def _sep(self, uid: str) -> str:
        return " " if uid not in self.emitted and (self.finals or any(self.emitted.values())) else ""

    def partial(self, ev: TranscriptPartial) -> str:
        done = self.emitted.get(ev.utterance_id, "")
        stable = ev.stable_text.strip()
        if len(stable) <= len(done) or not stable.startswith(done):
            return ""
        delta = self._sep(ev.utterance_id) + stable[len(done):]
        self.emitted[ev.utterance_id] = stable
        return delta

    def final(self, ev: TranscriptFinal) -> str:
        done = self.emitted.get(ev.utterance_id, "")
        text = ev.text.strip()
        sep = self._sep(ev.utterance_id)
        self.finals.append(text)
        if not text.startswith(done):  # cannot happen for stable text; the done event has the truth
            return ""
        delta = sep + text[len(done):]
        self.emitted[ev.utterance_id] = text
        return delta


async def session_stream(service: SessionService, session: Session,
                         audio: np.ndarray) -> AsyncIterator[StreamDelta | StreamDone]:
    """Deltas as `session` (started by the route, so a refusal is still an HTTP error) decodes `audio`
    (int16 mono at the hub rate), then the done event."""

    async def produce() -> None:
        step = int(CHUNK_S * HUB_RATE)
        for i in range(0, len(audio), step):
            # no more audio while a final is pending: finals queued behind a burst would make the hub's
            # results trail its audio, and admission (limits.admission_lag_s) would refuse everyone
            await session.settled.wait()
            if not service.is_open(session.id):
                return
            service.push_audio(session.id, audio[i:i + step].astype("<i2").tobytes())
            await asyncio.sleep(0)  # let results out between chunks
        service.stop(session.id)

    producer = asyncio.create_task(produce())
    texts = _Utterances()
    try:
        async for ev in service.events(session.id):
            if isinstance(ev, TranscriptPartial):
                if delta := texts.partial(ev):
                    yield StreamDelta(delta=delta)
            elif isinstance(ev, TranscriptFinal):
                if delta := texts.final(ev):
                    yield StreamDelta(delta=delta)
            elif isinstance(ev, ErrorEvent) and ev.fatal:
                raise HubError(ev.code, ev.message)
            elif isinstance(ev, SessionEnded):
                break
            if producer.done() and producer.exception() is not None:
                raise producer.exception()  # type: ignore[misc]
        yield StreamDone(text=" ".join(t for t in texts.finals if t))
    finally:
        if not producer.done():
            producer.cancel()
            with contextlib.suppress(asyncio.CancelledError, HubError):
                await producer
        if service.is_live(session.id):
            service.abort(session.id)


def _logprobs(lps: list[TokenLogprob]) -> list[Logprob]:
    return [Logprob(token=t.token, logprob=round(t.logprob, 6), bytes=t.bytes) for t in lps]


async def piece_stream(provider: Provider, audio: np.ndarray, opts: TranscribeOptions,
                       split: SplitOptions | None) -> AsyncIterator[StreamDelta | StreamDone]:
    """One delta per piece of the file (cut at pauses), each with its token logprobs, as it is decoded."""
    texts: list[str] = []
    every: list[TokenLogprob] = []
    for a, b in split_at_pauses(audio, split=split):
        res = await provider.transcribe(audio[a:b], opts)
        text = res.text.strip()
        if not text:
            continue
        lps = res.logprobs or []
        every.extend(lps)
        yield StreamDelta(delta=(" " if texts else "") + text, logprobs=_logprobs(lps) if opts.logprobs else None)
        texts.append(text)
    yield StreamDone(text=" ".join(texts), logprobs=_logprobs(every) if opts.logprobs else None)


def start_for(provider: Provider, language: str | None, split: SplitOptions | None,
              threshold: float | None, prompt: str | None = None) -> StartSession:
    vad = VadOptions(silence_ms=split.silence_ms if split else None, pre_roll_ms=split.pre_roll_ms if split else None,
                     threshold=threshold)
    return StartSession(provider=provider.name, language=language, audio=AudioSpec(encoding="pcm_s16le",
                        sample_rate=HUB_RATE, channels=1), interim_results=False, vad=vad, prompt=prompt)
