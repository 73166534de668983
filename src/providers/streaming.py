"""StreamAdapter: turns a batch provider into a streaming one (DESIGN §5).

Utterances are bounded by the session's VAD endpointer. While an utterance is open its audio is
re-decoded every `interim_interval_ms` of new audio (driven by arriving audio, not a timer; none in a pause,
and under load no more often than partials come back: `_paused`, `_partial_lag`); the word
prefix successive hypotheses agree on becomes `stable_text` (LocalAgreement-n, see `_on_partial`) and is
never taken back: it is forced as the prefix of every later decode of the utterance, and every later partial and the
final start with it exactly (`carry_stable` holds that should a decode not honour the prefix). At the
utterance end it is decoded once more for the final. Finals are delivered in utterance order even when two
workers finish out of order.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np

from ..core.audio import AudioChunk, RingBuffer, int16_to_float, ms_to_samples, samples_to_ms
from ..core.work import Superseded
from . import redecode
from .agreement import OPENING_KEPT, agreed_prefix, norm, read_after, stitch
from .base import (
    BatchDecoder,
    ProviderStream,
    Result,
    StreamOptions,
    StreamResult,
    StreamSink,
    TranscribeOptions,
    WordTiming,
)
from .room_tone import room_tone
from .text_guard import carry_stable, echoes, loops, non_speech_phrase, non_speech_tail, restart_tail
from .text_join import join_words

log = logging.getLogger(__name__)

@dataclass
class _Utterance:
    id: str
    start: int
    end: int | None = None
    committed: list[str] = field(default_factory=list)
    previous: list[list[str]] = field(default_factory=list)  # the last hypotheses (words), newest last
    last_partial_end: int = 0
    done: bool = False
    speculative: _FinalJob | None = None  # a decode started at a pause
    index: int = 0                        # utterance number in this stream
    shown: int = 0                        # audio end of the last partial delivered (its start before one)
    shown_at: float = 0.0                 # monotonic time of that partial (of the start before one)
    pause: int | None = None              # end of the voiced audio at the last pause hint
    asked_at: float | None = None         # monotonic time of the oldest partial request not yet answered
    committed_at: int = 0                 # audio end of the partial that last extended the stable text
    openings: list[list[str]] = field(default_factory=list)  # each hypothesis' first words, until a promise

    @property
    def showed_words(self) -> bool:
        """A partial with words has been delivered for this utterance."""
        return self.shown > self.start


@dataclass(frozen=True)
class _Heard:
    """A delivered final, kept as left context for the next ones (2-pass decoding)."""
    index: int
    start: int
    end: int
    text: str


@dataclass
class _FinalJob:
    offset: int                        # utterance end the decode is for
    base: int                          # start of the decoded audio (the utterance's, or an earlier final's)
    prefix: str                        # earlier finals' text forced in front of it ("" without left context)
    future: asyncio.Future[Result]     # the result for this utterance alone (prefix words removed): a task


def _text_of(f: asyncio.Future[Result]) -> str | None:
    """A finished decode's text; None if it was dropped or failed (a dropped speculation is no error)."""
    if f.cancelled() or f.exception() is not None:
        return None
    return f.result().text


@dataclass
class _PendingFinal:
    utt: _Utterance
    future: asyncio.Future[Result]
    end: int


class StreamAdapter(ProviderStream):
    # audio after the last voiced frame that the final decodes: what the VAD has heard when it hints a pause
    # (40 % of silence_ms 450), so a speculative decode is the endpoint's, and a push-to-talk final gets
    # the same length of digital silence
    tail_ms = 180
    # True: that missing tail is the utterance's background instead (`room_tone`). Off: it mended two
    # push-to-talk endings but, on finals decoded without a promise, changed words seconds before the end
    # both ways (varied 13.5 -> 14.3 %), a change of the whole decode, not of its end (BENCHMARKS, issue 23)
    fill_tail = False
    min_final_ms = 120  # shorter utterances are dropped (clicks, breaths)
    context_gap_s = 2.0  # earlier finals are left context only across pauses up to this long
    context_below_s = 10.0  # ... and only for utterances up to this long (a VAD's fragments and the long rest of a
    # sentence a turn rule cut at a short pause: at 4 s that rest was read without its context; issue 19, BENCHMARKS)
    short_of_partials = 0.6  # a final with fewer words than this share of the stable partial is re-decoded
    overdue_ms = 1000   # an utterance without a partial for this long asks for one even under load
    edge_words = 7      # a partial's last words are never stable text (~2.5 s of speech: fewer cost WER)
    agreement = 2       # stable text: the words this many successive hypotheses agree on (LocalAgreement-n)
    check_tail_word = True  # a final's opening word again at its end is cut if it lies past the voiced audio
    guard_opening = True  # no promise of an opening a hypothesis read a word before (`agreement.read_after`)
    skip_paused = True  # no partial in a pause (see `_paused`)
    max_stretch = 4     # under load the partial interval grows up to this many times `interim_interval_ms`
    # a partial of an utterance with stable text decodes its audio from `tail_window_s` before the partial
    # that last extended the stable text (its words end ~edge_words before that partial's end), with the
    # stable text as the prompt, and is joined onto it (`stitch`); 0: every partial decodes the whole utterance
    tail_window_s = 0.0

    def __init__(self, provider: BatchDecoder, opts: StreamOptions, sink: StreamSink, ring: RingBuffer):
        self.provider = provider
        self.opts = opts
        self.sink = sink
        self.ring = ring
        self.interval = ms_to_samples(opts.interim_interval_ms)
        self.min_partial = ms_to_samples(opts.min_partial_ms)
        self.overdue = ms_to_samples(self.overdue_ms)
        # the previous final as the prompt; not when the language may change between utterances (auto):
        # another language's text there steers Whisper into translating
        self.use_context = bool(provider.options.get("condition_on_previous", True)) and bool(
            opts.language and opts.language != "auto")
        self._utt: _Utterance | None = None
        self._audio_end = 0
        self._finals: deque[_PendingFinal] = deque()
        self._context = ""
        self._closed = False
        self.speculation_hits = 0
        self.redecodes = 0
        # 2-pass: a final is decoded with the audio of the finals just before it in front (their text forced
        # as the decoder's prefix), so a sentence the VAD cut at its pauses is read with its context
        self.left_context = ms_to_samples(1000 * provider.left_context_s)
        self._heard: deque[_Heard] = deque()
        self._recent: RingBuffer | None = None  # audio since the oldest final in _heard (shares the chunks)
        self._index = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._partial_lag = 0  # audio samples: how long the last partial took from its request to its result

    # -- markers and audio ---------------------------------------------------------------
    def push(self, chunk: AudioChunk) -> None:
        self._audio_end = chunk.end
        self._keep_recent(chunk)
        u = self._utt
        if u is None or not self.opts.interim_results or self._closed:
            return
        # until the utterance shows its first words, it asks twice as often (those decodes are short); after
        # that, no more often than partials come back (under load: the interval stretches, see `_on_partial`)
        interval = max(self.interval, self._partial_lag) if u.showed_words else self.interval // 2
        if self._audio_end - u.start >= self.min_partial and self._audio_end - u.last_partial_end >= interval \
                and not self._paused(u):
            self._request_partial(u)

    def _paused(self, u: _Utterance) -> bool:
        """Speech paused a moment ago (a pause hint, less than an interval back): no voiced audio arrived
        since, and the utterance either ends (its final, decoded from the hint on, shows the last words) or
        speech resumes, and the next partial comes with it."""
        return self.skip_paused and u.pause is not None and self._audio_end - u.pause < self.interval

    def start_utterance(self, utterance_id: str, offset: int, stable: str = "") -> None:
        self._index += 1
        # a replayed utterance keeps the words already promised: its partials and final continue them
        self._utt = _Utterance(utterance_id, offset, committed=stable.split(), last_partial_end=offset,
                               index=self._index, shown=offset, shown_at=time.monotonic())
        if not self.left_context:
            return
        if self._recent is None:
            self._recent = RingBuffer(self.left_context + ms_to_samples(60_000))
            self._recent.start = self._recent.end = offset
            self._recent.append(self.ring.read(offset, self._audio_end))
        else:
            self._recent.trim(self._heard[0].start if self._heard else offset)

    def _keep_recent(self, chunk: AudioChunk) -> None:
        """Left-context audio is kept only while it can serve: during speech, while finals are pending and
        for `context_gap_s` after the last final (silent streams hold none)."""
        r = self._recent
        if r is None:
            return
        idle = self._utt is None and not self._finals
        if r.end != chunk.offset or (idle and (not self._heard or
                                              chunk.end - self._heard[-1].end > ms_to_samples(1000 * self.context_gap_s))):
            self._recent = None
            self._heard.clear()
            return
        r.append(chunk.samples)

    def pause_hint(self, utterance_id: str, offset: int,
                   on_text: Callable[[str | None], None] | None = None) -> None:
        """Start the final's decode at a pause; if the endpoint lands on the same offset, the final is
        (nearly) ready when it is declared. Speech that resumes makes the speculation stale. `on_text` hears
        the speculation's text (None: no speculation, or it failed or was dropped)."""
        u = self._utt
        if u is not None and u.id == utterance_id:
            u.pause = offset
        speculate = (u is not None and u.id == utterance_id and offset - u.start >= ms_to_samples(self.min_final_ms)
                     and not self.provider.scheduler.finals_busy())  # busy: it would take a real final's lane
        if u is None or not speculate:
            if on_text is not None:
                on_text(None)
            return
        self._drop_speculation(u)
        u.speculative = self._submit_final(u, offset)
        if on_text is not None:
            u.speculative.future.add_done_callback(lambda f: on_text(_text_of(f)))

    def _drop_speculation(self, u: _Utterance) -> None:
        if u.speculative is not None:
            fut = u.speculative.future
            if not fut.done():
                fut.cancel()  # dropped by the scheduler if not started; a running decode is ignored
            elif not fut.cancelled():
                fut.exception()  # a failed speculation that is no longer needed is not an error
            u.speculative = None

    def _left_context(self, u: _Utterance, offset: int) -> tuple[int, str]:
        """(audio start, forced text) of the finals right before `u` that are decoded with it: consecutive
        utterances with text, pauses up to `context_gap_s`, the whole window within `left_context`."""
        if not self.left_context or self._recent is None or offset - u.start > ms_to_samples(1000 * self.context_below_s):
            return u.start, ""  # a long utterance carries its own context: no extra encoder cost
        if not self.opts.language or self.opts.language == "auto":
            return u.start, ""  # the utterance before may be in another language: its text would steer this one
        chain: list[_Heard] = []
        nxt, expected = u.start, u.index - 1
        for h in reversed(self._heard):
            if (h.index != expected or nxt - h.end > ms_to_samples(1000 * self.context_gap_s)
                    or offset - h.start > self.left_context or h.start < self._recent.start):
                break
            chain.append(h)
            nxt, expected = h.start, h.index - 1
        if not chain:
            return u.start, ""
        return chain[-1].start, join_words(h.text for h in reversed(chain))

    def _final_audio(self, base: int, offset: int) -> np.ndarray:
        """Audio from `base` to the utterance end plus `tail_ms`, as the VAD endpoint sees it. A final forced
        by flush/stop right after the last word has no audio after it yet: the tail is silence (with
        `fill_tail`, the utterance's own background: `room_tone`), so the decoder sees the same as for an
        endpointed final (a word cut at the window's edge is misread)."""
        end = offset + ms_to_samples(self.tail_ms)
        stop = min(end, max(self._audio_end, offset))
        src = self._recent if self._recent is not None and base < self.ring.start else self.ring
        audio = src.read(base, stop)
        missing = end - base - len(audio)
        if missing > 0:
            fill = room_tone(audio, missing) if self.fill_tail else np.zeros(missing, dtype=audio.dtype)
            audio = np.concatenate([audio, fill])
        return int16_to_float(audio)

    def _decode(self, audio: np.ndarray, opts: TranscribeOptions) -> asyncio.Future[Result]:
        fut = self.provider.scheduler.submit(lambda: self.provider.timed_decode(audio, opts), final=True,
                                             batch=self.provider.batch(audio, opts))
        assert fut is not None
        return fut

    def _submit_final(self, u: _Utterance, offset: int) -> _FinalJob:
        """Queue the final's decode now and finish it in a task (`_final`): its future is the task."""
        base, prefix = self._left_context(u, offset)
        audio = self._final_audio(base, offset)
        prompt = self._context or None if self.use_context and not prefix else None
        own = join_words(u.committed)  # the stable text: the final continues it
        opts = TranscribeOptions(language=self.opts.language, word_timestamps=self.opts.word_timestamps,
                                 prompt=prompt, prefix=join_words((prefix, own)) or None,
                                 task=self.opts.task, initial_prompt=self.opts.prompt, hotwords=self.opts.hotwords)
        first = self._decode(audio, opts)  # queued at once, in the order finals are declared
        task = asyncio.get_running_loop().create_task(self._final(u, offset, base, prefix, own, audio, opts, first))
        task.add_done_callback(lambda t: first.cancel() if t.cancelled() else None)  # (cancelled before it ran)
        return _FinalJob(offset, base, prefix, task)

    async def _final(self, u: _Utterance, offset: int, base: int, prefix: str, own: str, audio: np.ndarray,
                     opts: TranscribeOptions, first: asyncio.Future[Result]) -> Result:
        """The utterance's final: the first decode's own words, decoded again once if `redecode.plan` says
        so, and `redecode.settle` picks which stands."""
        res = self._own_words(await first, base, prefix, u)
        step = redecode.plan(res.text, context=prefix, forced=own, stable=u.committed, short_of=self.short_of_partials)
        if step is None or (step.why == "tail_word" and not self.check_tail_word):
            return res
        self.redecodes += 1
        again_audio, again_base, again_prefix = (self._final_audio(u.start, offset), u.start, "") if step.alone \
            else (audio, base, prefix)
        retry = self._decode(again_audio, replace(opts, prefix=step.prefix, prompt=opts.prompt if step.prompt else None,
                                                  word_timestamps=opts.word_timestamps or step.words))
        try:
            await asyncio.wait({retry})  # (this task's own cancellation cancels the retry: see below)
        except asyncio.CancelledError:
            retry.cancel()
            raise
        if retry.cancelled() and step.why != "check_speech":
            raise asyncio.CancelledError()
        again = None if retry.cancelled() or retry.exception() is not None else \
            self._own_words(retry.result(), again_base, again_prefix, u)
        return redecode.settle(step.why, res, again, samples_to_ms(offset - u.start))

    def _own_words(self, res: Result, base: int, prefix: str, u: _Utterance) -> Result:
        """The words of `u` alone from a decode that had earlier finals in front: the forced prefix words are
        dropped, word times are made relative to the utterance start."""
        shift = samples_to_ms(u.start - base)
        if not shift:
            return res
        if not prefix:
            return replace(res, words=[WordTiming(w.word, max(0, w.start_ms - shift), max(0, w.end_ms - shift),
                                                  w.confidence) for w in res.words])
        forced = prefix.split()
        words = res.text.split()
        n = agreed_prefix(forced, words)
        rest = words[n:]
        if n < len(forced) and n < len(words) and norm(words[n]).startswith(norm(forced[n])):
            # the continuation glued onto the last forced word ("fat" + "-mutton"): keep what follows it
            tail = words[n][len(forced[n]):].lstrip("-")
            rest = ([tail] if tail else []) + words[n + 1:]
        timed = [WordTiming(w.word, w.start_ms - shift, w.end_ms - shift, w.confidence) for w in res.words
                 if (w.start_ms + w.end_ms) / 2 >= shift]
        return Result(text=join_words(rest), words=timed, language=res.language, duration_ms=res.duration_ms,
                      segments=res.segments)

    def end_utterance(self, utterance_id: str, offset: int) -> None:
        u = self._utt
        if u is None or u.id != utterance_id:
            return
        self._utt = None
        u.end = offset
        u.done = True
        if offset - u.start < ms_to_samples(self.min_final_ms):
            self._drop_speculation(u)
            self._heard.clear()
            # an empty final: the session stops waiting for this utterance (and may trim its audio)
            self.sink.on_result(StreamResult(u.id, "", True, u.start, offset, language=self.opts.language))
            return
        spec = u.speculative
        if (spec is not None and spec.offset == offset and not spec.future.cancelled()
                and (spec.base, spec.prefix) == self._left_context(u, offset)):
            fut = spec.future
            self.speculation_hits += 1
        else:
            self._drop_speculation(u)
            fut = self._submit_final(u, offset).future
        u.speculative = None
        self._finals.append(_PendingFinal(u, fut, offset))
        self._idle.clear()
        fut.add_done_callback(lambda _f: self._deliver_finals())

    # -- partials --------------------------------------------------------------------------
    def _request_partial(self, u: _Utterance) -> None:
        u.last_partial_end = self._audio_end
        end = self._audio_end
        start = u.committed_at - ms_to_samples(1000 * self.tail_window_s)
        tail = list(u.committed) if self.tail_window_s and u.committed and start - u.start >= ms_to_samples(1000) \
            else None
        start = start if tail is not None else u.start
        audio = int16_to_float(self.ring.read(start, end))
        prompt = self._context or None if self.use_context else None
        opts = TranscribeOptions(language=self.opts.language, interim=True,
                                 prefix=join_words(u.committed) or None if tail is None else None,
                                 prompt=prompt if tail is None else join_words(tail)[-200:],
                                 task=self.opts.task, initial_prompt=self.opts.prompt, hotwords=self.opts.hotwords)
        overdue = end - u.shown >= self.overdue
        fut = self.provider.scheduler.submit(lambda: self.provider.timed_decode(audio, opts), final=False,
                                             batch=self.provider.batch(audio, opts),
                                             key=self.opts.session_id, overdue=overdue,
                                             first=not u.showed_words, since=u.shown_at)
        if fut is None:
            u.asked_at = None
            return  # skipped under load
        if u.asked_at is None:
            u.asked_at = time.monotonic()
        fut.add_done_callback(lambda f: self._on_partial(u, end, f, tail))

    def _on_partial(self, u: _Utterance, end: int, fut: asyncio.Future[Result], tail: list[str] | None = None) -> None:
        if fut.cancelled() or u.done or self._closed:
            return
        exc = fut.exception()
        if isinstance(exc, Superseded):
            return
        if exc is not None:
            u.asked_at = None
            log.warning("partial decode failed for %s: %s", self.opts.session_id, exc)
            return
        if u.asked_at is not None:
            # requests superseded while queued count from the first: the interval stretches to the time a
            # partial takes to come back, so asking more often than the partial lanes can answer stops
            lag = ms_to_samples(1000 * (time.monotonic() - u.asked_at))
            self._partial_lag = min(lag, self.max_stretch * self.interval) if self.max_stretch > 1 else 0
            u.asked_at = None
        res = fut.result()
        words = res.text.split()
        if tail is not None and words:
            words = stitch(tail, words)
            res = replace(res, text=join_words(words))
        if not words:
            return
        # stable text is a promise the final keeps (it is forced to start with it), so only words the final
        # would very likely write are promised: `agreement` successive hypotheses agree on them, they are not
        # among the last `edge_words` (at the edge of the audio: cut, misheard, their punctuation a guess at a
        # sentence end), nor a restart of the hypothesis' opening words at its end, the hypothesis is not a
        # loop, a non-speech phrase or a reading of the prompt, and the final will not be decoded with earlier
        # finals in front (2-pass: their context corrects its first words), nor an opening some hypothesis
        # read a word before (`read_after`). A translation promises nothing: its wording changes as the
        # sentence goes on, and a forced English start let the final fall back into the spoken language
        if not u.committed:
            u.openings.append(words[:OPENING_KEPT])
        agreed = 0 if self.opts.task == "translate" else min([agreed_prefix(p, words) for p in u.previous[-(self.agreement - 1):]]
                     + [len(words) - restart_tail(res.text) - self.edge_words]) if len(u.previous) >= self.agreement - 1 else 0
        if (agreed > len(u.committed) and agreed_prefix(u.committed, words) == len(u.committed)
                and not loops(res.text) and not non_speech_phrase(res.text) and not non_speech_tail(res.text)
                and not (self.use_context and echoes(res.text, self._context))
                and not self._left_context(u, end)[1]
                and not (self.guard_opening and not u.committed and read_after(words[:agreed], u.openings))):
            # the committed words stay as they were shown (the decode was forced to start with them): the
            # agreed words after them extend the stable text, never rewrite it
            u.committed = u.committed + words[len(u.committed):agreed]
            u.committed_at = end
            if u.committed[0][:1].islower():  # an utterance's text starts a sentence, as its final would
                u.committed[0] = u.committed[0][:1].upper() + u.committed[0][1:]
        u.previous = [*u.previous[-(self.agreement - 2):], words] if self.agreement > 2 else [words]
        u.shown = end
        u.shown_at = time.monotonic()
        text_words = u.committed + words[len(u.committed):]
        self.sink.on_result(StreamResult(u.id, join_words(text_words), False, u.start, end,
                                         stable_text=join_words(u.committed), language=res.language or self.opts.language))

    # -- finals ----------------------------------------------------------------------------
    def _deliver_finals(self) -> None:
        while self._finals and self._finals[0].future.done():
            pf = self._finals.popleft()
            if pf.future.cancelled():
                continue
            exc = pf.future.exception()
            if exc is not None:
                self._heard.clear()
                self.sink.on_error(exc, pf.utt.id)
                continue
            res = redecode.cut_restart(pf.future.result(), len(pf.utt.committed))
            text = carry_stable(join_words(pf.utt.committed), res.text.strip())  # the stable text is its prefix
            if text:
                self._context = text[-200:]
                if self._recent is not None:
                    self._heard.append(_Heard(pf.utt.index, pf.utt.start, pf.end, text))
                    while len(self._heard) > 1 and pf.end - self._heard[0].start > self.left_context:
                        self._heard.popleft()
                    self._recent.trim(self._heard[0].start)
                base = samples_to_ms(pf.utt.start)
                words = tuple(WordTiming(w.word, w.start_ms + base, w.end_ms + base, w.confidence)
                              for w in res.words)
                self.sink.on_result(StreamResult(pf.utt.id, text, True, pf.utt.start, pf.end, stable_text=text,
                                                 words=words, language=res.language or self.opts.language))
            else:
                self._heard.clear()  # audio without text cannot be left context (its words would come back)
                self.sink.on_result(StreamResult(pf.utt.id, "", True, pf.utt.start, pf.end,
                                                 language=res.language or self.opts.language))
        if not self._finals:
            self._idle.set()

    async def drain(self) -> None:
        await self._idle.wait()

    async def close(self) -> None:
        self._closed = True
        for pf in self._finals:
            if not pf.future.done():
                pf.future.cancel()
        self._finals.clear()
        self._idle.set()
