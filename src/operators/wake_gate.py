"""Wake-word gate: a pipeline stage that holds audio back until the wake phrase is heard.

While *armed* every audio chunk is spotted and passed on as `Gated` (it stays in the session timeline,
but no later stage may open an utterance on it, so nothing reaches the provider), and utterance markers
coming from a VAD placed before the gate are swallowed. On detection the gate emits `WakeWord` and
opens a listening window of `window_s` from the end of the phrase; speech keeps it open (it re-arms
`window_s` after the end of the last utterance). If an utterance is open upstream when the phrase is
heard (the VAD runs before the gate), the gate opens a new utterance right after the phrase, so
"<phrase> turn the lights on" said in one breath still reaches the provider.

The spotter's decoder takes ~0.4 s to build: a pooled one is used when available, otherwise it is
built in a worker thread while the armed audio waits in a short backlog (spotted once it is ready).
"""

from __future__ import annotations

from collections import deque
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

from ..core.audio import HUB_RATE, AudioChunk, ms_to_samples
from ..core.errors import ErrorCode, HubError
from .base import Gated, Item, PauseHint, SpeechEnd, SpeechStart, WakeWord
from .wakeword import KeyphraseSpotter, check_phrase, open_spotter

BACKLOG_S = 10.0  # armed audio kept for the spotter while its decoder is being built


@dataclass(frozen=True)
class WakeOptions:
    phrase: str
    threshold: float = 1e-20
    window_s: float = 8.0
    kind: str = "pocketsphinx"


def _split(chunk: AudioChunk, at: int) -> tuple[AudioChunk | None, AudioChunk | None]:
    k = min(max(at - chunk.offset, 0), len(chunk.samples))
    head = AudioChunk(chunk.samples[:k], chunk.offset) if k > 0 else None
    tail = AudioChunk(chunk.samples[k:], chunk.offset + k) if k < len(chunk.samples) else None
    return head, tail


class WakeGate:
    def __init__(self, opts: WakeOptions, vad_upstream: bool = False) -> None:
        if opts.kind != "pocketsphinx":
            raise HubError(ErrorCode.provider_unavailable,
                           "wake word kind 'openwakeword' is not available: the openwakeword package (0.6) ships "
                           "no models (its melspectrogram/embedding feature models and every wake word model are "
                           "downloaded at run time, which this hub never does); use kind 'pocketsphinx'")
        if not opts.threshold > 0:
            raise HubError(ErrorCode.invalid_command, f"wake threshold must be > 0, got {opts.threshold}")
        self.opts = opts
        self.vad_upstream = vad_upstream  # markers arrive inline (else they are fed back by observe())
        self.phrase = check_phrase(opts.phrase)  # bad words are an error at session start
        self._window = ms_to_samples(opts.window_s * 1000)
        got = open_spotter(self.phrase, opts.threshold)
        self._spotter: KeyphraseSpotter | None = got if isinstance(got, KeyphraseSpotter) else None
        self._building: Future[KeyphraseSpotter] | None = got if isinstance(got, Future) else None
        self._backlog: deque[AudioChunk] = deque()
        self._backlog_samples = 0
        self.armed = True
        self._window_end = 0    # the window re-arms here unless speech is going on
        self._speaking = False  # an utterance is open (markers seen inline or fed back)
        self._passing = False   # an utterance this gate let through is open
        self._opened_at = 0
        self.detections = 0
        self._closed = False

    # -- the stage -----------------------------------------------------------------------
    def process(self, items: list[Item]) -> list[Item]:
        out: list[Item] = []
        for it in items:
            if isinstance(it, AudioChunk):
                out.extend(self._audio(it))
            elif isinstance(it, SpeechStart):
                self._speaking = True
                if not self.armed:
                    self._passing = True
                    out.append(it)
            elif isinstance(it, SpeechEnd):
                self._speaking = False
                self._window_end = max(self._window_end, it.offset + self._window)
                if self._passing:
                    self._passing = False
                    out.append(SpeechEnd(max(it.offset, self._opened_at), it.forced, it.reason, it.turn_probability))
            elif isinstance(it, PauseHint):
                if self._passing:
                    out.append(it)
            else:
                out.append(it)
        return out

    def flush(self, items: list[Item], at: int) -> list[Item]:
        return self.process(items)

    def close(self, items: list[Item], at: int) -> list[Item]:
        return self.process(items)

    def observe(self, items: list[Item]) -> None:
        """Speech edges from a VAD placed after the gate (they keep the listening window open)."""
        for it in items:
            if isinstance(it, SpeechStart):
                self._speaking = True
            elif isinstance(it, SpeechEnd):
                self._speaking = False
                self._window_end = max(self._window_end, it.offset + self._window)

    def release(self) -> None:
        self._closed = True
        if self._spotter is not None:
            self._spotter.close()
            self._spotter = None
        if self._building is not None:
            self._building.add_done_callback(_close_built)
            self._building = None
        self._backlog.clear()

    # -- internals -------------------------------------------------------------------------
    def _audio(self, chunk: AudioChunk) -> list[Item]:
        if not self.armed:
            if self._speaking or chunk.end <= self._window_end:
                return [chunk]
            head, tail = _split(chunk, self._window_end)
            self.armed = True
            if self._spotter is not None:
                self._spotter.reset()
            out: list[Item] = [head] if head is not None else []
            if tail is not None:
                out.extend(self._armed(tail))
            return out
        return self._armed(chunk)

    def _ready(self) -> KeyphraseSpotter | None:
        if self._spotter is None and self._building is not None and self._building.done():
            fut, self._building = self._building, None
            exc = fut.exception()
            if exc is not None:
                raise exc if isinstance(exc, HubError) else HubError(
                    ErrorCode.internal, f"wake word spotter failed to load: {exc}", fatal=True)
            self._spotter = fut.result()
            if self._closed:
                self._spotter.close()
                self._spotter = None
        return self._spotter

    def _armed(self, chunk: AudioChunk) -> list[Item]:
        spotter = self._ready()
        if spotter is None:
            self._backlog.append(chunk)
            self._backlog_samples += len(chunk.samples)
            while self._backlog_samples > BACKLOG_S * HUB_RATE:
                self._backlog_samples -= len(self._backlog.popleft().samples)
            return [Gated(chunk)]
        detection: int | None = None
        while self._backlog and detection is None:  # audio that arrived while the decoder was built
            old = self._backlog.popleft()
            found = spotter.feed(old.samples, old.offset)
            if found:
                detection = found[0].offset_samples
        self._backlog.clear()
        self._backlog_samples = 0
        if detection is None:
            found = spotter.feed(chunk.samples, chunk.offset)
            if not found:
                return [Gated(chunk)]
            detection = found[0].offset_samples
        return self._open(chunk, detection)

    def _open(self, chunk: AudioChunk, detection: int) -> list[Item]:
        self.detections += 1
        self.armed = False
        at = min(max(detection, chunk.offset), chunk.end)
        head, tail = _split(chunk, at)
        out: list[Item] = [Gated(head)] if head is not None else []
        out.append(WakeWord(self.phrase, detection))
        self._opened_at = at
        self._window_end = at + self._window
        if self.vad_upstream and self._speaking:  # the VAD before the gate is inside an utterance: continue it from here
            self._passing = True
            out.append(SpeechStart(at, at))
        if tail is not None:
            out.append(tail)
        return out


def _close_built(fut: Future[Any]) -> None:
    if not fut.cancelled() and fut.exception() is None:
        fut.result().close()
