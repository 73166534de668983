"""Turn mode ("semantic"): the turn model, not a fixed silence, decides when an utterance ends.

The VAD finds speech and silence as in silence mode (endpoint.Endpointer). When the silence after the last
voiced frame reaches `min_silence_ms` the endpointer asks the turn model (turn_model.py) whether the speaker
has finished, on the audio of the utterance so far (its last 8 s, this silence included):
- P >= threshold: the utterance ends there at once (`reason: turn`, at the end of the last voiced frame);
- else it waits: speech that resumes continues the utterance; a silence that grows is asked about again at
  2x, 4x, ... `min_silence_ms`; at `max_silence_ms` the utterance ends whatever the model said
  (`reason: max_silence`).
While an answer is outstanding the audio flows on (to the ring buffer and the provider) but no later frame
is decided on: the decisions depend on the audio only, not on how fast it arrives or how busy the model is
(an answer that does not come within ANSWER_TIMEOUT_S counts as "not finished"). The speculative final's
decode starts after HINT_MS of silence (as in silence mode), so a finished turn's final is (nearly) ready when
the model says so.

`eagerness` sets the threshold and the timing, as OpenAI's semantic_vad does: `high` ends turns soonest,
`low` waits longest for a speaker who pauses, `auto` is `medium`.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np

from ..core.audio import ms_to_samples
from ..core.errors import ErrorCode, HubError
from .base import EndReason, FrameClassifier, Gated, Item, PauseHint
from .endpoint import Endpointer, EndpointOptions, EndpointStage
from .turn_model import WINDOW, TurnRunner

log = logging.getLogger(__name__)

Eagerness = Literal["low", "medium", "high", "auto"]
ANSWER_TIMEOUT_S = 1.0
HINT_MS = 180  # silence after which the final's speculative decode starts (providers.streaming tail_ms)


@dataclass(frozen=True)
class TurnSettings:
    threshold: float       # P(turn complete) at or above which the utterance ends
    min_silence_ms: int    # silence before the model is first asked
    max_silence_ms: int    # silence at which the utterance ends whatever the model says


#: eagerness -> (threshold, min_silence_ms, max_silence_ms). Chosen on bench/bench_turns.py (docs/BENCHMARKS.md):
#: Smart Turn calls many mid-sentence pauses finished, so only a confident answer after 300 ms ends a turn at
#: `medium` (fewer cuts than the 450 ms silence rule, p50 0.37 s); `high` takes the model's own 0.5 at 200 ms.
EAGERNESS: dict[str, TurnSettings] = {
    "high": TurnSettings(0.5, 200, 1500),
    "medium": TurnSettings(0.8, 300, 2000),
    "low": TurnSettings(0.9, 400, 3000),
}
EAGERNESS["auto"] = EAGERNESS["medium"]


def turn_options(eagerness: str, min_silence_ms: int | None, max_silence_ms: int | None) -> TurnSettings:
    """The eagerness's settings with the given silences in place of its own (checked: min below max)."""
    base = EAGERNESS[eagerness]
    lo = base.min_silence_ms if min_silence_ms is None else min_silence_ms
    hi = base.max_silence_ms if max_silence_ms is None else max_silence_ms
    if lo >= hi:
        raise HubError(ErrorCode.invalid_command, f"turn.min_silence_ms ({lo}) must be below turn.max_silence_ms "
                       f"({hi})")
    return TurnSettings(base.threshold, lo, hi)


class TurnEndpointer(Endpointer):
    """The silence endpointer whose end of utterance is the turn model's, within max_silence_ms.

    `ask(query_id, audio)` is called when the model must be asked; its answer comes back through
    `answer(query_id, probability)`, which returns the markers the frames decided on meanwhile."""

    def __init__(self, classifier: FrameClassifier, opts: EndpointOptions, turn: TurnSettings,
                 ask: Callable[[int, np.ndarray], None]) -> None:
        super().__init__(classifier, EndpointOptions(opts.enabled, opts.min_speech_ms, turn.max_silence_ms,
                                                     opts.pre_roll_ms, opts.max_utterance_s))
        self.turn = turn
        self.ask = ask
        first = max(1, ms_to_samples(turn.min_silence_ms) // self.frame)
        self._asks = set(itertools.takewhile(lambda n: n < self._silence_frames,
                                             (first << k for k in range(16))))
        # the final's speculative decode starts where silence mode starts it (the provider decodes HINT_MS of
        # tail after the last voiced frame), before the first question: a finished turn's final is then ready
        # about when the model answers
        self._hint_frames = max(1, min(first, ms_to_samples(HINT_MS) // self.frame))
        self.flush_tail_ms = turn.min_silence_ms
        self._history = np.zeros(WINDOW, dtype=np.int16)  # the last 8 s of audio, circular
        self._history_end = 0                              # timeline offset of its end
        self._ids = itertools.count(1)
        self._query: int | None = None                     # the question waiting for its answer
        self._asking = True
        self.probability: float | None = None              # the model's last answer in this utterance
        self.questions = 0

    # -- audio --------------------------------------------------------------------------------
    def _frame(self, frame: np.ndarray, offset: int) -> list[Item]:
        pos = offset % WINDOW
        n = len(frame)
        first = min(n, WINDOW - pos)
        self._history[pos:pos + first] = frame[:first]
        self._history[:n - first] = frame[first:]
        self._history_end = offset + n
        return super()._frame(frame, offset)

    def _recent(self, start: int) -> np.ndarray:
        """The audio from `start` (at most 8 s back) to the end of the last frame."""
        end = self._history_end
        start = max(start, end - WINDOW, 0)
        idx = np.arange(start, end) % WINDOW
        return self._history[idx]

    # -- decisions ---------------------------------------------------------------------------
    def _waiting(self) -> bool:
        return self._query is not None

    def _silence(self, end: int) -> list[Item] | None:
        run = self._silent_run
        if run >= self._silence_frames:
            return self._end(self._last_voiced_end, reason="max_silence", probability=self.probability)
        out: list[Item] = [PauseHint(self._last_voiced_end)] if run == self._hint_frames and self._asking else []
        if run not in self._asks or not self._asking:
            return out or None
        self._query = next(self._ids)
        self.questions += 1
        self.ask(self._query, self._recent(self._utt_start))
        return out

    def answer(self, query_id: int, probability: float | None) -> list[Item]:
        """The model's answer to question `query_id` (None: no answer): the markers it and the frames that
        waited for it decide. A stale answer (speech resumed, flush) changes nothing."""
        if query_id != self._query:
            return []
        self._query = None
        out: list[Item] = []
        if probability is not None:
            self.probability = probability
            if self.speaking and probability >= self.turn.threshold:
                out.extend(self._end(self._last_voiced_end, reason="turn", probability=probability))
        out.extend(self._run())
        return out

    def _end(self, offset: int, forced: bool = False, reason: EndReason = "silence",
             probability: float | None = None) -> list[Item]:
        items = super()._end(offset, forced, reason, probability)
        self.probability = None
        return items

    # -- client and gate ---------------------------------------------------------------------
    def _settle(self) -> list[Item]:
        """Decide on the frames that wait, without asking the model (flush, stop: the client decides)."""
        self._query = None
        self._asking = False
        try:
            return self._run()
        finally:
            self._asking = True

    def flush(self, at: int) -> list[Item]:
        out = self._settle()
        return out + super().flush(at)

    def gated(self, item: Gated) -> list[Item]:
        self._query = None
        return super().gated(item)


class TurnStage(EndpointStage):
    """The turn endpointer as a pipeline stage: asks the model on `runner`, and hands the markers that an
    answer decides to `late` (they leave the pipeline outside any push)."""

    endpointer: TurnEndpointer

    def __init__(self, classifier: FrameClassifier, opts: EndpointOptions, turn: TurnSettings, runner: TurnRunner,
                 late: Callable[[list[Item]], None]) -> None:
        super().__init__(TurnEndpointer(classifier, opts, turn, self._ask))
        self.runner = runner
        self.late = late
        self._closed = False

    def _ask(self, query_id: int, audio: np.ndarray) -> None:
        loop = asyncio.get_running_loop()
        fut = self.runner.submit(audio)
        timer = loop.call_later(ANSWER_TIMEOUT_S, self._answer, query_id, None)

        def done(f: asyncio.Future[float]) -> None:
            timer.cancel()
            p: float | None = None
            if f.cancelled():
                pass
            elif f.exception() is not None:
                log.error("turn model failed: %s", f.exception())
            else:
                p = f.result()
            self._answer(query_id, p)

        fut.add_done_callback(done)

    def _answer(self, query_id: int, probability: float | None) -> None:
        if self._closed:
            return
        items = self.endpointer.answer(query_id, probability)
        if items:
            self.late(items)

    def release(self) -> None:
        self._closed = True
