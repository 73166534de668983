"""Turn mode ("semantic"): the turn model and the recogniser's own reading, not a fixed silence, decide when an
utterance ends.

The VAD finds speech and silence as in silence mode (endpoint.Endpointer). Each pause is judged in three steps,
on the audio only (the decisions do not depend on how fast audio arrives or how busy the model is):
1. At `min_silence_ms` the turn model (turn_model.py) is asked once whether the speaker has finished, on the
   utterance so far (its last 8 s, this silence included). P >= threshold: the utterance ends there
   (`reason: turn`, at the end of the last voiced frame). Smart Turn's answer is sharpest early: asked again
   later it drifts towards "finished" as any silence grows (bench/bench_turns.py, docs/BENCHMARKS.md), so it
   is asked once per pause. A confident answer waits for the pause's speculative text (the final is that
   decode, so it comes no later) and ends the utterance unless the text says otherwise: it trails on (a comma,
   an ellipsis, a dash, a conjunction, article or preposition at its end: the answer does not count), or it
   does not back the answer (an answer *unbacked*, which ends the utterance only at `late_text_ms`): it is
   running prose Whisper did not close (its last word lower-case, no full stop: Whisper closes a sentence it
   reads as finished, and leaves digits and names in lists open), or it is written in Han characters and P is
   under `han_threshold` (Smart Turn calls most Mandarin pauses finished, mid-sentence or not). No text (none
   coming, or none in time, or a flush before it came) leaves the answer as it is. A `stop` waits for the
   answers and texts the received audio's decisions wait for (`TurnStage.decided`, engine/stopping.py).
2. The same frame starts the final's speculative decode (PauseHint); its text comes back through the hint's
   `on_text`. At `text_silence_ms` a text that ends a sentence (`.`, `?`, `!`, `。`, `？`, `！`; not an
   ellipsis or a dash) ends the utterance (`reason: turn`) unless the model's answer at this pause was below
   `text_threshold` (it is sure the speaker goes on): Whisper reads an unfinished clause as unfinished more
   often than the audio model alone does, but it also puts a full stop on many fragments, and the two together
   cut fewer sentences than either (bench/turn_probe.py). A pause whose question got no answer is judged by
   its text alone. The veto weakens as the silence grows: at `late_text_ms` a text that ends a sentence ends
   the utterance whatever the model said (a flat reading the model is sure goes on, by then a long pause), and
   so does a confident answer its text did not back (step 1): where the model and the text disagree, the
   pause's length decides, the same way round either way (`text_silence_ms` at an eagerness without
   `late_text_ms`).
   A pause with no text (the stream does not speculate, the decode was dropped or failed, or it did not come
   within ANSWER_TIMEOUT_S) is judged as silence mode judges it: it ends at the pipeline's `vad.silence_ms`
   (`reason: silence`), unless the model's answer at this pause vetoed it. Without the recogniser's reading a
   turn then waits no longer than silence mode would.
3. At `max_silence_ms` the utterance ends whatever was said (`reason: max_silence`).
Speech that resumes keeps the utterance open and the pause's answers are stale. While an answer (the model's,
or the text at step 2) is outstanding the audio flows on, to the ring buffer and the provider, but no later
frame is decided on; an answer that does not come within ANSWER_TIMEOUT_S counts as "not finished".

`eagerness` sets the threshold and the timing, as OpenAI's semantic_vad does: `high` ends turns soonest,
`low` waits longest for a speaker who pauses, `auto` is `medium`.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import re
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
# The model's future and the speculative decode's always complete (an answer, None, a cancelled or failed
# decode); this bound is only a safety net. It is long so that a busy machine or a client sending faster than
# real time delays a decision instead of changing it: at 1 s, a decode queued behind others timed out and the
# pause was judged without its text (reason `silence` where the audio ends a turn).
ANSWER_TIMEOUT_S = 5.0
HINT_MS = 180  # the latest silence at which the final's speculative decode starts (silence mode: 40 % of 450)
HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
SENTENCE_END = re.compile(r"[.?!。？！]['\"”’)\]]*$")
TRAILING_OFF = re.compile(r"(\.\.\.|…|[-–—])['\"”’)\]]*$")
UNCLOSED = re.compile(r"(^|\s)[a-z][\w'’-]*$")
FORMATTED = re.compile(r"^[^a-z]*[A-Z]|[.,?!;:]")  # a capital before any lower-case letter, or punctuation
TRAILS_ON = re.compile(r"([,;:，、；：]|\.\.\.|…|[-–—])['\"”’)\]]*$"
                       r"|\b(and|but|or|nor|because|the|a|an|of|to|with|from|for|if|than|which|my|your|our|their)$",
                       re.IGNORECASE)


def ends_a_sentence(text: str | None) -> bool:
    """The recogniser's text for the speech so far reads as a finished sentence (not `...`, not a dash)."""
    t = (text or "").strip()
    return bool(t) and SENTENCE_END.search(t) is not None and TRAILING_OFF.search(t) is None


def trails_on(text: str | None) -> bool:
    """The recogniser's text stops mid-clause: a comma, semicolon, colon, ellipsis or dash, or a conjunction,
    article or preposition that needs more words ("... for Queen of", "... depending on how...")."""
    return TRAILS_ON.search((text or "").strip()) is not None


def unclosed(text: str | None) -> bool:
    """The recogniser's text is running prose it wrote as sentences but did not close: its last word is
    lower-case with no punctuation after it ("Anger is something that can be really", "... The long journey").
    Whisper closes what it reads as a finished sentence; digits and names ("0,1803", "Queen of Clubs") it often
    leaves open even when they end a turn, and a fragment it reads as the middle of a sentence (after a cut:
    "ask what you can do for your country") it writes without capitals or punctuation at all, which says
    nothing about its end."""
    t = (text or "").strip()
    return UNCLOSED.search(t) is not None and FORMATTED.search(t) is not None


def written_in_han(text: str | None) -> bool:
    """The recogniser's text is Chinese (Han characters): the turn model's answer needs `han_threshold`."""
    return HAN.search(text or "") is not None


@dataclass(frozen=True)
class TurnSettings:
    threshold: float       # P(turn complete) at or above which the utterance ends at the first question
    min_silence_ms: int    # silence at which the model is asked (and the final's decode starts)
    max_silence_ms: int    # silence at which the utterance ends whatever was said
    text_silence_ms: int   # silence at which a text that ends a sentence ends the utterance ...
    text_threshold: float = 0.0  # ... if the model's answer at this pause was at least this
    late_text_ms: int | None = None  # silence at which such a text ends the utterance whatever the model said,
    #                                  and a confident answer that its text did not back (unclosed prose, Han)
    han_threshold: float | None = None  # `threshold` when the pause's text is in Han characters (Mandarin)


#: eagerness -> settings. Chosen on bench/turn_probe.py and bench/bench_turns.py (docs/BENCHMARKS.md): on
#: English the model asked at 100 ms says >= 0.9 for most finished turns and few mid-sentence pauses; a text
#: that ends a sentence catches most of the finished turns it doubted, and the model's answer below 0.1 (it
#: is sure the speaker goes on) vetoes the text at most mid-sentence pauses Whisper put a full stop on; `low`
#: waits longer at each step, for a speaker who pauses (its text step, at 800 ms, needs no veto). The veto
#: lapses at late_text_ms, and Mandarin (a Han text) needs a surer model (issue 19, third slice).
EAGERNESS: dict[str, TurnSettings] = {
    "high": TurnSettings(0.9, 60, 1000, 200, 0.05, late_text_ms=750, han_threshold=0.95),
    "medium": TurnSettings(0.9, 100, 1200, 300, 0.1, late_text_ms=750, han_threshold=0.97),
    "low": TurnSettings(0.98, 150, 2500, 800),
}
EAGERNESS["auto"] = EAGERNESS["medium"]


def turn_options(eagerness: str, min_silence_ms: int | None, max_silence_ms: int | None) -> TurnSettings:
    """The eagerness's settings with the given silences in place of its own (checked: min below max). The
    text step stays within them."""
    base = EAGERNESS[eagerness]
    lo = base.min_silence_ms if min_silence_ms is None else min_silence_ms
    hi = base.max_silence_ms if max_silence_ms is None else max_silence_ms
    if lo >= hi:
        raise HubError(ErrorCode.invalid_command, f"turn.min_silence_ms ({lo}) must be below turn.max_silence_ms "
                       f"({hi})")
    text = min(max(base.text_silence_ms, lo), hi)
    late = None if base.late_text_ms is None else min(max(base.late_text_ms, text), hi)
    return TurnSettings(base.threshold, lo, hi, text, base.text_threshold, late, base.han_threshold)


class TurnEndpointer(Endpointer):
    """The silence endpointer whose end of utterance is the turn model's or the recogniser's, within
    max_silence_ms.

    `ask(query_id, audio)` is called when the model must be asked; its answer comes back through
    `answer(query_id, probability)`. `listen(pause_id)` gives the callback a PauseHint carries for the text of
    the final's speculative decode; the text comes back through `heard(pause_id, text)`. Both return the
    markers the frames decided on meanwhile."""

    def __init__(self, classifier: FrameClassifier, opts: EndpointOptions, turn: TurnSettings,
                 ask: Callable[[int, np.ndarray], None],
                 listen: Callable[[int], Callable[[str | None], None]] | None = None) -> None:
        super().__init__(classifier, EndpointOptions(opts.enabled, opts.min_speech_ms, turn.max_silence_ms,
                                                     opts.pre_roll_ms, opts.max_utterance_s))
        self.turn = turn
        self.ask = ask
        self.listen = listen
        self._ask_frames = max(1, ms_to_samples(turn.min_silence_ms) // self.frame)
        self._text_frames = max(self._ask_frames, ms_to_samples(turn.text_silence_ms) // self.frame)
        # a pause without a text ends where silence mode would end it (never before the text step)
        self._no_text_frames = max(self._text_frames, ms_to_samples(opts.silence_ms) // self.frame)
        self._late_frames = (None if turn.late_text_ms is None
                             else max(self._text_frames, ms_to_samples(turn.late_text_ms) // self.frame))
        # a confident answer that the pause's text did not back ends the utterance here
        self._unbacked_frames = self._text_frames if self._late_frames is None else self._late_frames
        # the final's speculative decode starts with the question (or at HINT_MS if that is sooner): a finished
        # turn's final is then (nearly) ready when the model answers, and its text is there for step 2
        self._hint_frames = max(1, min(self._ask_frames, ms_to_samples(HINT_MS) // self.frame))
        self.flush_tail_ms = turn.min_silence_ms
        self._history = np.zeros(WINDOW, dtype=np.int16)  # the last 8 s of audio, circular
        self._history_end = 0                              # timeline offset of its end
        self._ids = itertools.count(1)
        self._query: int | None = None                     # the question waiting for its answer
        self._pause = 0                                    # the current pause (its text's id)
        self._text: str | None = None                      # the pause's speculative text, once heard
        self._text_heard = False
        self._awaiting_text = False                        # step 2 (or a script check) waits for the text
        self._check_script = False                         # the answer ends the turn if the text is not Han
        self._asking = True
        self.probability: float | None = None              # the model's last answer in this utterance
        self._pause_p: float | None = None                 # its answer at this pause (None: none yet)
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
        return self._query is not None or self._awaiting_text

    @property
    def waiting(self) -> bool:
        """A decision on the audio received waits for the model's answer or the pause's text."""
        return self._waiting()

    def _silence(self, end: int) -> list[Item] | None:
        run = self._silent_run
        if run == 1:  # a new pause: the last one's text says nothing about this one
            self._pause = next(self._ids)
            self._text, self._text_heard = None, False
            self._pause_p = None
        if run >= self._silence_frames:
            return self._end(self._last_voiced_end, reason="max_silence", probability=self.probability)
        if not self._asking:
            return None
        out: list[Item] = []
        if run == self._hint_frames:
            on_text = self.listen(self._pause) if self.listen is not None else None
            out.append(PauseHint(self._last_voiced_end, on_text))
        if run == self._ask_frames:
            self._query = next(self._ids)
            self.questions += 1
            self.ask(self._query, self._recent(self._utt_start))
        if (run in (self._text_frames, self._no_text_frames, self._late_frames, self._unbacked_frames)
                and self._query is None):
            out.extend(self._read_text())
        return out or None

    def _read_text(self) -> list[Item]:
        """Step 2: end the utterance if the pause's text ends a sentence, or if there is no text and the pause
        is as long as silence mode's; wait for a text still coming."""
        if self.listen is None:
            return []
        if not self._text_heard:
            self._awaiting_text = True
            return []
        if not self.speaking:
            return []
        late = self._late_frames is not None and self._silent_run >= self._late_frames
        if late and ends_a_sentence(self._text):  # by now a long pause: the veto has lapsed
            return self._end(self._last_voiced_end, reason="turn", probability=self.probability)
        if self._silent_run >= self._unbacked_frames and self._unbacked():
            return self._end(self._last_voiced_end, reason="turn", probability=self.probability)
        if self._pause_p is not None and self._pause_p < self.turn.text_threshold:
            return []  # the model is sure the speaker goes on: neither the text nor its absence ends the turn
        if ends_a_sentence(self._text):
            return self._end(self._last_voiced_end, reason="turn", probability=self.probability)
        if self._text is None and self._silent_run >= self._no_text_frames:
            return self._end(self._last_voiced_end, reason="silence", probability=self.probability)
        return []

    def _text_agrees(self, probability: float) -> bool:
        """The pause's text (if any) lets a confident answer end the turn at once: it does not trail on, it is
        not prose left open, and it is not Mandarin unless the answer reaches han_threshold."""
        han = self.turn.han_threshold
        if trails_on(self._text):
            return False
        if written_in_han(self._text):
            return han is None or probability >= han
        return not unclosed(self._text)

    def _unbacked(self) -> bool:
        """This pause's answer was confident and its text neither trails on nor agreed (unclosed prose, a Han
        text under han_threshold): the answer ends the turn once the pause is long (`_unbacked_frames`)."""
        p = self._pause_p
        return p is not None and p >= self.turn.threshold and not trails_on(self._text)

    def answer(self, query_id: int, probability: float | None) -> list[Item]:
        """The model's answer to question `query_id` (None: no answer): the markers it and the frames that
        waited for it decide. A stale answer (speech resumed, flush) changes nothing."""
        if query_id != self._query:
            return []
        self._query = None
        out: list[Item] = []
        if probability is not None:
            self.probability = self._pause_p = probability
            if not self.speaking or probability < self.turn.threshold:
                pass
            elif self._text_heard or self.listen is None:
                if self._text_agrees(probability):
                    out.extend(self._end(self._last_voiced_end, reason="turn", probability=probability))
            else:  # finished unless the pause's text says otherwise: wait for it
                self._check_script = self._awaiting_text = True
        if self.speaking and self._silent_run >= self._text_frames and self._asking:
            out.extend(self._read_text())  # the text step's frame went by while the model was asked
        if not self._waiting():
            out.extend(self._run())
        return out

    def heard(self, pause_id: int, text: str | None) -> list[Item]:
        """The text of pause `pause_id`'s speculative decode (None: none): the markers it and the frames that
        waited for it decide. A stale text (speech resumed, flush) changes nothing."""
        if pause_id != self._pause or self._text_heard:
            return []
        self._text, self._text_heard = text, True
        if not self._awaiting_text:
            return []
        self._awaiting_text = False
        out: list[Item] = []
        if self._check_script:
            self._check_script = False
            if self.speaking and self._pause_p is not None and self._text_agrees(self._pause_p):
                out = self._end(self._last_voiced_end, reason="turn", probability=self._pause_p)
        if self.speaking and self._silent_run >= self._text_frames:
            out.extend(self._read_text())
        out.extend(self._run())
        return out

    def _end(self, offset: int, forced: bool = False, reason: EndReason = "silence",
             probability: float | None = None) -> list[Item]:
        items = super()._end(offset, forced, reason, probability)
        self.probability = self._pause_p = None
        self._awaiting_text = self._check_script = False
        self._pause = next(self._ids)  # what comes back for the ended pause is stale
        self._text, self._text_heard = None, False
        return items

    # -- client and gate ---------------------------------------------------------------------
    def _settle(self) -> list[Item]:
        """Decide on the frames that wait, without asking the model (flush; a stop once what it waited for came
        or ANSWER_TIMEOUT_S passed: the client decides). A
        confident answer that waits only for its pause's text stands: the text has not come in time (step 1),
        so the utterance ends there as the model said (`reason: turn`). Without this a slow decode (a loaded
        machine) turned the model's answer into max_silence when the audio received before the stop passed
        max_silence_ms, and the reason depended on load."""
        out: list[Item] = []
        if self._check_script and self.speaking and self._pause_p is not None:
            out = self._end(self._last_voiced_end, reason="turn", probability=self._pause_p)
        self._query = None
        self._awaiting_text = self._check_script = False
        self._asking = False
        try:
            return out + self._run()
        finally:
            self._asking = True

    def flush(self, at: int) -> list[Item]:
        out = self._settle()
        return out + super().flush(at)

    def gated(self, item: Gated) -> list[Item]:
        self._query = None
        self._awaiting_text = self._check_script = False
        return super().gated(item)


class TurnStage(EndpointStage):
    """The turn endpointer as a pipeline stage: asks the model on `runner`, hears the speculative text through
    the PauseHint, and hands the markers that an answer decides to `late` (they leave the pipeline outside any
    push)."""

    endpointer: TurnEndpointer

    def __init__(self, classifier: FrameClassifier, opts: EndpointOptions, turn: TurnSettings, runner: TurnRunner,
                 late: Callable[[list[Item]], None]) -> None:
        super().__init__(TurnEndpointer(classifier, opts, turn, self._ask, self._listen))
        self.runner = runner
        self.late = late
        self._closed = False
        self._decided: asyncio.Future[None] | None = None  # what a `stop` awaits (decided())

    def decided(self) -> asyncio.Future[None] | None:
        """None when no decision on the audio received waits; otherwise a future done once none does: the
        model's answer and the pause's text it waits for have come (each within ANSWER_TIMEOUT_S, its own
        timer's None otherwise), and what they decided, the frames after them included, has gone to `late`; or
        once the stage is released. A `stop` awaits it before closing the pipeline (engine/stopping.py), so
        the reason a turn ends with does not depend on how fast the model or the decode ran."""
        if self._closed or not self.endpointer.waiting:
            return None
        if self._decided is None:
            self._decided = asyncio.get_running_loop().create_future()
        return self._decided

    def _check_decided(self) -> None:
        fut = self._decided
        if fut is not None and (self._closed or not self.endpointer.waiting):
            self._decided = None
            if not fut.done():
                fut.set_result(None)

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
        if not self._closed:
            self._deliver(self.endpointer.answer(query_id, probability))
        self._check_decided()

    def _listen(self, pause_id: int) -> Callable[[str | None], None]:
        """The callback for a pause's speculative text: the first call counts (the timer's None if no text
        comes in time)."""
        timer = asyncio.get_running_loop().call_later(ANSWER_TIMEOUT_S, lambda: on_text(None))

        def on_text(text: str | None) -> None:
            timer.cancel()
            if not self._closed:
                self._deliver(self.endpointer.heard(pause_id, text))
            self._check_decided()

        return on_text

    def _deliver(self, items: list[Item]) -> None:
        if items:
            self.late(items)

    def release(self) -> None:
        self._closed = True
        self._check_decided()
