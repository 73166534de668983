"""Turn-taking: silence mode against semantic mode at each eagerness, on real speech (issue 19).

    .venv/bin/python -m bench.bench_turns [--hub] [--silence-ms 450] [--pause-ms 800]

Endpointing (always): the pipeline alone, with the real VAD and the real turn model; the speculative text that a
hub's provider would hand back at each pause is a real decode of the utterance so far (tiny.en for English,
the bundled multilingual base for Mandarin, greedy, as the final's first pass). Audio is pushed at once, so the
decisions do not depend on pace; each delay adds the model's measured answer time. Two kinds of case per clip:
- the clip as one turn, followed by 3.5 s of silence: how long after the end of the turn's speech the
  utterance is declared ended (p50/p95, complete turns), and how often it was cut at one of its own pauses;
- the same clip with a mid-sentence pause of `--pause-ms` put in at a word boundary with no punctuation in
  the reference decode (at 30 %, 55 % and 80 % of its words; the clip's own noise floor fills it): a false cut
  is an utterance that ends inside that pause. These are the held-out cut points the issue asks for.
Also the turn model's CPU per audio second.

`--hub`: the English clips streamed to a real hub at real-time pace (one session per mode, the modes at once):
end of speech -> transcript.final (the final's `latency_ms`: audio of the utterance end received -> final
sent) on each turn's last utterance, and WER.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import os
import re
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from asrhub.client.errors import HubRequestError
from asrhub.core.commands import AudioSpec, TurnOptions, VadOptions
from asrhub.core.config import PipelineConfig
from asrhub.operators import turn as turn_module
from asrhub.operators.base import Item, PauseHint, SpeechEnd, SpeechStart
from asrhub.operators.pipeline import Pipeline, build_spec
from asrhub.operators.turn_model import get_runner
from bench.common import SPEECH_ROOT, machine, p50_p95, stream_timed
from bench.turn_context import hub_with
from tests.support import Clip, HubProcess, base_config, english, last_voiced_end, load_pcm16, manifest, wer

TAIL_S = 3.5  # past the longest max_silence_ms (low: 2.5 s)
RATE = 16000
MODES: dict[str, dict[str, Any]] = {"silence": {}, **{f"semantic/{e}": {"mode": "semantic", "eagerness": e}
                                                      for e in ("high", "medium", "low")}}
#: variants that can be run by name (--modes), beside MODES: medium asked (and its final's decode started) at
#: 60 ms of silence instead of 100 ms
VARIANTS: dict[str, dict[str, Any]] = {"semantic/medium-ask60": {"mode": "semantic", "eagerness": "medium",
                                                                 "min_silence_ms": 60}}
PUNCT = re.compile(r"[.,?!;:。，？！、；：]$")


def clips(language: str = "en") -> list[Clip]:
    if language == "zh":
        return [c for c in manifest(SPEECH_ROOT) if c.language == "zh" and c.transcript]
    out = [c for c in english(SPEECH_ROOT) if c.seconds < 30]  # the sonnet is 14 lines, not one turn
    varied = SPEECH_ROOT / "varied"
    if (varied / "MANIFEST.tsv").exists():
        out += [c for c in english(varied) if c.seconds < 30]
    return out


def held_out(language: str = "en") -> set[str]:
    """The clips kept out of choosing turn mode's settings from the third slice on (issue 19): every third clip
    of `clips(language)` (English 9 of 28, Mandarin 3 of 9), reported on their own."""
    return {c.path.name for i, c in enumerate(clips(language)) if i % 3 == 2}


def model_call_ms() -> float:
    """The turn model's compute time per question so far (its thread time: the wait a live session sees
    when the model is not queued)."""
    runner = get_runner()
    return runner.busy_s / runner.calls * 1000 if runner.calls else 0.0


class Reader:
    """The text a hub's provider hands back at a pause: a real greedy decode of the utterance so far."""

    def __init__(self) -> None:
        from faster_whisper import WhisperModel

        from asrhub.providers.models import resolve_ct2_model

        self.models = {lang: WhisperModel(str(resolve_ct2_model(spec, provider="bench")), device="cpu",
                                          compute_type="int8", cpu_threads=1)
                       for lang, spec in (("en", "bundled:tiny.en"), ("zh", "bundled:base"))}
        self._texts: dict[tuple[str, str], str] = {}

    def text(self, pcm: np.ndarray, language: str) -> str:
        """The greedy decode of `pcm` (the same audio is decoded once: the modes share their pauses)."""
        key = (language, hashlib.sha1(pcm.tobytes()).hexdigest())
        if key not in self._texts:
            self._texts[key] = self._decode(pcm, language)
        return self._texts[key]

    def _decode(self, pcm: np.ndarray, language: str) -> str:
        segs, _ = self.models[language].transcribe(pcm.astype(np.float32) / 32768, language=language, beam_size=1,
                                                   vad_filter=False, without_timestamps=True,
                                                   condition_on_previous_text=False)
        return " ".join(s.text.strip() for s in segs).strip()

    def gaps(self, pcm: np.ndarray, language: str) -> list[int]:
        """Sample offsets at word boundaries with no punctuation (30 %, 55 %, 80 % of the words), each at the
        quietest 10 ms within 80 ms of the boundary."""
        segs, _ = self.models[language].transcribe(pcm.astype(np.float32) / 32768, language=language,
                                                   beam_size=1, vad_filter=False, word_timestamps=True)
        words = [w for s in segs for w in (s.words or [])]
        ok = [i for i in range(1, len(words) - 1) if not PUNCT.search(words[i].word.strip())
              and words[i + 1].start - words[i].end < 0.15]
        out = []
        for i in sorted({ok[int(f * (len(ok) - 1))] for f in (0.3, 0.55, 0.8)} if ok else set()):
            lo = max(0, int(min(words[i].end, words[i + 1].start) * RATE) - 1280)
            hi = int(max(words[i].end, words[i + 1].start) * RATE) + 1280
            energy = [np.abs(pcm[j:j + 160].astype(np.float32)).mean() for j in range(lo, hi - 160, 80)]
            out.append(lo + int(np.argmin(energy)) * 80 + 80)
        return out


def noise(n: int, rng: np.random.Generator) -> np.ndarray:
    """`n` samples of a quiet room (-84 dBFS white noise: not digital silence, not enough to wake the VAD)."""
    return rng.normal(0, 2, n).astype(np.int16)


@dataclass
class Turns:
    delays_ms: list[float] = field(default_factory=list)   # end of the turn's speech -> its end declared
    own_cuts: int = 0                                       # utterances ended at a clip's own pauses
    turns: int = 0
    false_cuts: int = 0                                     # utterances ended inside a put-in pause
    pauses: int = 0
    reasons: dict[str, int] = field(default_factory=dict)
    audio_s: float = 0.0
    model_s: float = 0.0                                    # turn model thread time

    def add(self, other: Turns) -> None:
        self.delays_ms += other.delays_ms
        self.own_cuts += other.own_cuts
        self.turns += other.turns
        self.false_cuts += other.false_cuts
        self.pauses += other.pauses
        for k, v in other.reasons.items():
            self.reasons[k] = self.reasons.get(k, 0) + v
        self.audio_s += other.audio_s
        self.model_s += other.model_s


async def endpoint(pcm: np.ndarray, turn: dict[str, Any], silence_ms: int, reader: Reader | None,
                   language: str) -> tuple[list[SpeechEnd], list[float]]:
    """`_endpoint` with the live hub's 1 s answer timeout lifted: on a loaded machine the model's answer may
    come later, and the decisions must not depend on load (a timed-out answer lets the text step decide
    without the model's veto)."""
    with lifted_timeout():
        return await _endpoint(pcm, turn, silence_ms, reader, language)


@contextlib.contextmanager
def lifted_timeout() -> Iterator[None]:
    saved = turn_module.ANSWER_TIMEOUT_S
    turn_module.ANSWER_TIMEOUT_S = 600.0
    try:
        yield
    finally:
        turn_module.ANSWER_TIMEOUT_S = saved


async def _endpoint(pcm: np.ndarray, turn: dict[str, Any], silence_ms: int, reader: Reader | None,
                    language: str) -> tuple[list[SpeechEnd], list[float]]:
    """Every utterance end of `pcm` pushed at once, and for each the audio heard when it was decided after
    its offset, in ms (in semantic mode plus the model's answer time when the model's answer decided it)."""
    p = Pipeline(build_spec(AudioSpec(), VadOptions(silence_ms=silence_ms), PipelineConfig(),
                            turn=TurnOptions(**turn) if turn else None))
    late: asyncio.Queue[list[Item]] = asyncio.Queue()
    p.on_late = late.put_nowait
    progress = asyncio.Event()  # an answer or a text was taken (the markers it decided are in `late`)
    waited: list[float] = []
    unanswered: list[int] = []  # questions the model did not answer (its answers are awaited, not timed out)
    utt_start = [0]
    if p.turn is not None:
        ep = p.turn.endpointer
        answer, heard, end_ = ep.answer, ep.heard, ep._end
        answering = [False]

        def timed_answer(query_id: int, probability: float | None) -> list[Item]:
            if probability is None:
                unanswered.append(query_id)
            answering[0] = True
            try:
                return answer(query_id, probability)
            finally:
                answering[0] = False
                progress.set()

        def told(pause_id: int, text: str | None) -> list[Item]:
            try:
                return heard(pause_id, text)
            finally:
                progress.set()

        def timed_end(offset: int, forced: bool = False, reason: Any = "silence",
                      probability: float | None = None) -> list[Item]:
            model_ms = model_call_ms() if answering[0] and reason == "turn" else 0.0
            waited.append((ep._history_end - offset) / 16 + model_ms)
            return end_(offset, forced, reason, probability)

        ep.answer = timed_answer  # type: ignore[method-assign]
        ep.heard = told  # type: ignore[method-assign]
        ep._end = timed_end  # type: ignore[method-assign]

    ends: list[SpeechEnd] = []

    def take(items: list[Item]) -> None:
        for it in items:
            if isinstance(it, SpeechStart):
                utt_start[0] = it.audio_start
            elif isinstance(it, SpeechEnd):
                ends.append(it)
                if p.turn is None:
                    waited.append(float(silence_ms))
            elif isinstance(it, PauseHint) and it.on_text is not None:
                # the provider decodes the utterance with HINT_MS of tail
                it.on_text(reader.text(pcm[utt_start[0]:it.offset + 1600], language) if reader else None)

    take(p.push(pcm.tobytes()))
    if p.turn is not None:
        while p.turn.endpointer._waiting():
            await progress.wait()
            progress.clear()
            while not late.empty():
                take(late.get_nowait())
    take(p.flush())  # still open at the end: counted as flush
    p.release()
    assert not unanswered, f"the turn model failed on {len(unanswered)} questions"
    return ends, waited


async def endpointing(silence_ms: int, pause_ms: int, language: str,
                      modes: dict[str, dict[str, Any]]) -> tuple[dict[str, Turns], dict[str, Turns]]:
    """Every mode over every clip, and over the held-out clips alone."""
    every = {name: Turns() for name in modes}
    held = {name: Turns() for name in modes}
    runner = get_runner()
    reader = Reader()
    rng = np.random.default_rng(0)
    kept_out = held_out(language)
    for c in clips(language):
        speech = load_pcm16(c.path)
        tail = noise(int(TAIL_S * RATE), rng)
        whole = np.concatenate([speech, tail])
        end = last_voiced_end(speech)
        gaps = reader.gaps(speech, language)
        for name, turn in modes.items():
            one = Turns()
            busy = runner.busy_s
            ends, waited = await endpoint(whole, turn, silence_ms, reader, language)
            one.audio_s += len(whole) / RATE
            one.turns += 1
            one.own_cuts += sum(1 for e in ends[:-1] if e.offset < end - RATE * 0.1)
            for e in ends:
                one.reasons[e.reason] = one.reasons.get(e.reason, 0) + 1
            if ends and ends[-1].reason != "flush":
                one.delays_ms.append(waited[-1])
            for g in gaps:
                gap = noise(pause_ms * RATE // 1000, rng)
                cut_pcm = np.concatenate([speech[:g], gap, speech[g:], tail])
                ends, _ = await endpoint(cut_pcm, turn, silence_ms, reader, language)
                one.audio_s += len(cut_pcm) / RATE
                one.pauses += 1
                one.false_cuts += any(g - RATE * 0.3 <= e.offset <= g + len(gap) for e in ends)
            one.model_s += runner.busy_s - busy
            every[name].add(one)
            if c.path.name in kept_out:
                held[name].add(one)
    return every, held


@dataclass
class HubRun:
    latency_ms: list[float] = field(default_factory=list)   # the final's latency_ms (each turn's last final)
    decided_ms: list[float] = field(default_factory=list)   # its utterance end's audio sent -> speech.ended here
    reasons: dict[str, int] = field(default_factory=dict)   # speech.ended reason of those utterances
    wer: float = 0.0


def turn_ends(t: Any) -> tuple[float, float, str] | None:
    """(latency_ms, end of speech -> speech.ended received in ms, reason) of the turn's last final (before
    the stop), None if it has none."""
    finals = [(e, rt) for e, rt in zip(t.events, t.recv, strict=True)
              if e["type"] == "transcript.final" and rt < t.stop_at]
    if not finals:
        return None
    final, _ = finals[-1]
    ended = [(e, rt) for e, rt in zip(t.events, t.recv, strict=True)
             if e["type"] == "speech.ended" and e["offset_ms"] == final["end_ms"]]
    decided = (ended[0][1] - t.sent_time(final["end_ms"])) * 1000 if ended else float("nan")
    return final["latency_ms"], decided, ended[0][0].get("reason") or "?" if ended else "?"


async def stream_retrying(url: str, pcm: bytes, start: dict[str, Any]) -> Any:
    """stream_timed, the start tried again every 2 s (up to a minute) while the hub is at capacity (a machine
    shared with other jobs: its lag gate refuses new sessions until the results catch up)."""
    for _ in range(30):
        try:
            return await stream_timed(url, pcm, start=start, trailing_silence_ms=int(TAIL_S * 1000))
        except HubRequestError as e:
            if e.code != "too_many_sessions":
                raise
            await asyncio.sleep(2)
    return await stream_timed(url, pcm, start=start, trailing_silence_ms=int(TAIL_S * 1000))


async def with_hub(silence_ms: int, modes: dict[str, dict[str, Any]],
                   one_at_a_time: bool = False, context_below_s: float | None = None) -> dict[str, HubRun]:
    tmp = Path(tempfile.mkdtemp())
    hub = (HubProcess(base_config(), tmp) if context_below_s is None else hub_with(context_below_s, tmp)).start()
    try:
        async def one(name: str, turn: dict[str, Any]) -> tuple[str, HubRun]:
            run = HubRun()
            refs: list[str] = []
            hyps: list[str] = []
            for c in clips():
                start: dict[str, Any] = {"language": "en", "vad": {"silence_ms": silence_ms}}
                if turn:
                    start["turn"] = turn
                t = await stream_retrying(hub.ws, load_pcm16(c.path).tobytes(), start)
                end = turn_ends(t)
                if end is not None:
                    run.latency_ms.append(end[0])
                    run.decided_ms.append(end[1])
                    run.reasons[end[2]] = run.reasons.get(end[2], 0) + 1
                refs.append(c.transcript)
                hyps.append(" ".join(e["text"] for e in t.events if e["type"] == "transcript.final"))
            run.wer = wer(refs, hyps)
            return name, run

        if one_at_a_time:
            return dict([await one(n, t) for n, t in modes.items()])
        return dict(await asyncio.gather(*(one(n, t) for n, t in modes.items())))
    finally:
        hub.stop()


def model_cost(batches: tuple[int, ...] = (1, 4, 8), repeats: int = 12) -> list[tuple[int, float, float, float]]:
    """(batch, wall ms per call, CPU ms per call, CPU ms per question) of TurnModel.predict on real speech
    windows (the clips' last 8 s), each the median of `repeats` calls after a warm-up; one thread, as the
    runner uses it. CPU is the calling thread's time (onnxruntime runs on it with intra_op_num_threads=1)."""
    import time

    model = get_runner().load()
    windows = [load_pcm16(c.path)[-8 * RATE:] for c in clips()]
    model.predict(windows[:1])
    out = []
    for b in batches:
        wall, cpu = [], []
        for r in range(repeats):
            batch = [windows[(r * b + i) % len(windows)] for i in range(b)]
            t0, c0 = time.perf_counter(), time.thread_time()
            model.predict(batch)
            wall.append((time.perf_counter() - t0) * 1000)
            cpu.append((time.thread_time() - c0) * 1000)
        w, c = float(np.median(wall)), float(np.median(cpu))
        out.append((b, w, c, c / b))
    return out


async def questions_per_audio_s(turn: dict[str, Any], silence_ms: int) -> float:
    """How often a live stream asks the model: questions per second of audio over the clips (English and
    Mandarin), each followed by the quiet tail; the endpointing of `endpoint` without the text step."""
    runner = get_runner()
    calls, audio_s = runner.calls, 0.0
    rng = np.random.default_rng(0)
    for language in ("en", "zh"):
        for c in clips(language):
            pcm = np.concatenate([load_pcm16(c.path), noise(int(TAIL_S * RATE), rng)])
            await endpoint(pcm, turn, silence_ms, None, language)
            audio_s += len(pcm) / RATE
    return (runner.calls - calls) / audio_s


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--silence-ms", type=int, default=450)
    ap.add_argument("--pause-ms", type=int, default=800, help="the mid-sentence pause put in at each cut point")
    ap.add_argument("--languages", default="en,zh")
    ap.add_argument("--hub", action="store_true", help="also stream to a real hub: final latency and WER")
    ap.add_argument("--hub-only", action="store_true", help="only the real hub's part")
    ap.add_argument("--one-at-a-time", action="store_true", help="the hub's modes one after another, not at once")
    ap.add_argument("--modes", default="", help=f"the modes, comma-separated (default all: {','.join(MODES)})")
    ap.add_argument("--context-below-s", type=float, default=None,
                    help="the hub's 2-pass left-context limit (StreamAdapter.context_below_s; default: the code's)")
    ap.add_argument("--model-cost", action="store_true",
                    help="only the turn model's cost: per call at batch 1, 4, 8 and CPU per audio second")
    args = ap.parse_args()
    if args.model_cost:
        print(f"# bench_turns --model-cost — {machine()}; load average {os.getloadavg()[0]:.1f}")
        print("\n| batch | wall ms per call | CPU ms per call | CPU ms per question |\n|---|---|---|---|")
        rows = model_cost()
        for b, w, c, q in rows:
            print(f"| {b} | {w:.1f} | {c:.1f} | {q:.1f} |")
        for name in ("semantic/high", "semantic/medium", "semantic/low"):
            rate = await questions_per_audio_s(MODES[name], args.silence_ms)
            print(f"{name}: {rate:.2f} questions per audio second -> {rate * rows[0][2] / 10:.2f} % of a core "
                  f"per live stream at batch 1, {rate * rows[-1][3] / 10:.2f} % at batch {rows[-1][0]}")
        return
    print(f"# bench_turns — {machine()}; clips from {SPEECH_ROOT}, each + {TAIL_S} s silence; "
          f"put-in pauses {args.pause_ms} ms")
    modes = {n: {**MODES, **VARIANTS}[n] for n in args.modes.split(",")} if args.modes else MODES
    for language in [] if args.hub_only else args.languages.split(","):
        res, held = await endpointing(args.silence_ms, args.pause_ms, language, modes)
        for title, figures in ((f"{len(clips(language))} clips", res),
                               (f"held out: {', '.join(sorted(held_out(language)))}", held)):
            print(f"\n{language}: {title}")
            print("\n| mode | end of a turn -> utterance end, ms p50 / p95 | false cuts (put-in mid-sentence pauses) | "
                  "cuts at the clips' own pauses | end reasons | turn model CPU per audio-s |")
            print("|---|---|---|---|---|---|")
            for name, r in figures.items():
                cpu = r.model_s / r.audio_s if r.audio_s else 0.0
                reasons = ", ".join(f"{k} {v}" for k, v in sorted(r.reasons.items()))
                print(f"| {name} | {p50_p95(r.delays_ms)} | {r.false_cuts} of {r.pauses} | {r.own_cuts} in "
                      f"{r.turns} turns | {reasons} | {cpu * 100:.2f} % |")
    if args.hub or args.hub_only:
        hub = await with_hub(args.silence_ms, modes, args.one_at_a_time, args.context_below_s)
        print("\n| mode | end of speech -> final (latency_ms of each turn's last final) p50 / p95 | "
              "end of speech -> speech.ended at the client p50 / p95 | its reasons | WER |")
        print("|---|---|---|---|---|")
        for name, h in hub.items():
            why = ", ".join(f"{k} {v}" for k, v in sorted(h.reasons.items()))
            print(f"| {name} | {p50_p95(h.latency_ms)} | {p50_p95(h.decided_ms)} | {why} | {h.wer:.3f} |")


if __name__ == "__main__":
    asyncio.run(main())
