"""Endpointing: frame-level VAD decisions -> utterance markers, with hysteresis.

- speech starts when `min_speech_ms` of (mostly) voiced frames arrive; the utterance audio begins
  `pre_roll_ms` before the onset so the first phoneme is not cut;
- speech ends after `silence_ms` of unvoiced frames (the marker's offset is the end of the last
  voiced frame, the moment the hub learns of it is `silence_ms` later);
- an utterance longer than `max_utterance_s` is cut at the quietest recent frame.
With `enabled=False` every audio chunk is speech: utterances are bounded by flush/stop/max length.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

from ..core.audio import HUB_RATE, AudioChunk, ms_to_samples
from .base import EndReason, FrameClassifier, Gated, Item, PauseHint, SpeechEnd, SpeechStart


@dataclass(frozen=True)
class EndpointOptions:
    enabled: bool = True
    min_speech_ms: int = 150
    silence_ms: int = 350
    pre_roll_ms: int = 300
    max_utterance_s: float = 25.0


class Endpointer:
    def __init__(self, classifier: FrameClassifier | None, opts: EndpointOptions) -> None:
        self.vad = classifier
        self.opts = opts
        fs = classifier.frame_samples if classifier else 480
        self.frame = fs
        self._pending = np.zeros(0, dtype=np.int16)
        self._pending_offset = 0
        self._onset_frames = max(1, ms_to_samples(opts.min_speech_ms) // fs)
        self._silence_frames = max(1, ms_to_samples(opts.silence_ms) // fs)
        self._hint_frames = max(1, min(self._silence_frames - 1, ms_to_samples(opts.silence_ms * 0.4) // fs))
        self._window: deque[tuple[int, bool]] = deque(maxlen=self._onset_frames)
        self._energy: deque[tuple[int, float]] = deque(maxlen=max(1, ms_to_samples(1500) // fs))
        self.speaking = False
        self._utt_start = 0
        self._last_voiced_end = 0
        self._silent_run = 0
        self._last_end = 0  # end of the previous utterance (pre-roll never reaches back before it)
        self._max_len = int(opts.max_utterance_s * HUB_RATE)
        self.flush_tail_ms = opts.silence_ms  # audio after the last voiced frame that a flushed utterance keeps

    def push(self, chunk: AudioChunk) -> list[Item]:
        out: list[Item] = []
        if not self.opts.enabled or self.vad is None:
            if not self.speaking and len(chunk.samples):
                self.speaking = True
                self._utt_start = chunk.offset
                out.append(SpeechStart(chunk.offset, chunk.offset))
            out.append(chunk)
            self._last_voiced_end = chunk.end
            if self.speaking and chunk.end - self._utt_start >= self._max_len:
                out.extend(self._end(chunk.end, forced=True, reason="max_length"))
            return out
        out.append(chunk)
        if len(self._pending) == 0:
            self._pending_offset = chunk.offset
            self._pending = chunk.samples
        else:
            self._pending = np.concatenate([self._pending, chunk.samples])
        out.extend(self._run())
        return out

    def _run(self) -> list[Item]:
        """Decide on the whole frames received so far, until a decision has to wait (`_waiting`)."""
        out: list[Item] = []
        buf, base, f = self._pending, self._pending_offset, self.frame
        n = len(buf) // f
        i = 0
        while i < n and not self._waiting():
            out.extend(self._frame(buf[i * f:(i + 1) * f], base + i * f))
            i += 1
        self._pending = buf[i * f:].copy()
        self._pending_offset = base + i * f
        return out

    def _waiting(self) -> bool:
        """A decision waits for something outside the audio (the turn model's answer): later frames wait."""
        return False

    def gated(self, item: Gated) -> list[Item]:
        """Audio held back by a wake word gate: never speech. An open utterance ends where it starts, the
        detector starts afresh after it, and no pre-roll reaches back into it."""
        out: list[Item] = [item]
        if self.speaking:
            end = self._last_voiced_end if self.vad is not None and self.opts.enabled else item.chunk.offset
            out.extend(self._end(min(end, item.chunk.offset), forced=True, reason="flush"))
        self._pending = np.zeros(0, dtype=np.int16)
        self._window.clear()
        self._last_end = max(self._last_end, item.chunk.end)
        if self.vad is not None:
            self.vad.reset()
        return out

    def _frame(self, frame: np.ndarray, offset: int) -> list[Item]:
        assert self.vad is not None
        voiced = self.vad.is_speech(frame)
        end = offset + self.frame
        if not self.speaking:
            self._window.append((offset, voiced))
            voiced_count = sum(1 for _, v in self._window if v)
            if voiced and len(self._window) == self._onset_frames and voiced_count >= max(1, int(0.75 * self._onset_frames)):
                onset = next(o for o, v in self._window if v)
                self.speaking = True
                self._utt_start = max(self._last_end, onset - ms_to_samples(self.opts.pre_roll_ms))
                self._last_voiced_end = end
                self._silent_run = 0
                self._energy.clear()
                self._window.clear()
                return [SpeechStart(onset, self._utt_start)]
            return []
        self._energy.append((end, float(np.mean(np.abs(frame.astype(np.float32))))))
        if voiced:
            self._last_voiced_end = end
            self._silent_run = 0
        else:
            self._silent_run += 1
            said = self._silence(end)
            if said is not None:
                return said
        if end - self._utt_start >= self._max_len:
            cut = min(self._energy, key=lambda e: e[1])[0] if self._energy else end
            items = self._end(cut, forced=True, reason="max_length")
            # the audio after the cut still belongs to speech: open the next utterance right there
            self.speaking = True
            self._utt_start = cut
            self._last_voiced_end = end
            self._energy.clear()
            return [*items, SpeechStart(cut, cut)]
        return []

    def _silence(self, end: int) -> list[Item] | None:
        """`_silent_run` frames of silence so far (the last one ends at `end`): the utterance's markers, or
        None when the silence changes nothing yet."""
        if self._silent_run >= self._silence_frames:
            return self._end(self._last_voiced_end)
        if self._silent_run == self._hint_frames:
            return [PauseHint(self._last_voiced_end)]
        return None

    def _end(self, offset: int, forced: bool = False, reason: EndReason = "silence",
             probability: float | None = None) -> list[Item]:
        self.speaking = False
        self._last_end = offset
        self._silent_run = 0
        self._window.clear()
        return [SpeechEnd(offset, forced, reason, probability)]

    def flush(self, at: int) -> list[Item]:
        """Finalise the open utterance now (flush/stop). `at` is the end of the audio so far."""
        if not self.speaking:
            return []
        tail = ms_to_samples(self.flush_tail_ms)
        end = at if (not self.opts.enabled or self.vad is None) else max(self._last_voiced_end, min(at, self._last_voiced_end + tail))
        return self._end(end, forced=True, reason="flush")


class EndpointStage:
    """The VAD + endpointer as a pipeline stage: audio in, audio and utterance markers out."""

    def __init__(self, endpointer: Endpointer) -> None:
        self.endpointer = endpointer

    def process(self, items: list[Item]) -> list[Item]:
        out: list[Item] = []
        for it in items:
            if isinstance(it, AudioChunk):
                out.extend(self.endpointer.push(it))
            elif isinstance(it, Gated):
                out.extend(self.endpointer.gated(it))
            else:
                out.append(it)
        return out

    def flush(self, items: list[Item], at: int) -> list[Item]:
        return self.process(items) + self.endpointer.flush(at)

    def close(self, items: list[Item], at: int) -> list[Item]:
        return self.flush(items, at)

    def release(self) -> None:
        return None
