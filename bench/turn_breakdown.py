"""Where the time goes between the end of a complete turn and its final (issue 19): each component, per turn.

    .venv/bin/python -m bench.turn_breakdown [--languages en,zh] [--modes silence,semantic/medium,semantic/high]

A real hub (the default config, as `asrhub serve` builds it) runs in this process, on its own thread and event
loop, so that its turn endpointer and provider stream can be watched; the clips of bench_turns (English: tiny.en;
Mandarin: the bundled multilingual base) are streamed to it one session at a time at real-time pace over the
project's WebSocket client, each followed by 3.5 s of silence, the modes one after another on each clip (paired).
For each clip's last utterance (its complete turn), from the moment the hub had the turn's last voiced audio
(`t0`, the origin of the final's `latency_ms`):
- `ask`: when the turn model was asked, and `P` with the time its answer took;
- `text`: when the pause's speculative decode (started at the pause hint) handed back its text;
- `end`: when the utterance was declared ended, and by which rule: `model` (a confident answer, its text
  already there), `model+text` (a confident answer that waited for the text), `text` (the text step:
  a sentence-end text), `late_text` (a sentence-end text past the veto, at late_text_ms), `unbacked` (a
  confident answer its text did not back, at late_text_ms), `no_text` (silence mode's wait, no text),
  `max_silence`, `silence` (silence mode), `flush`;
- `final`: the final event, and whether its decode was the speculative one (`spec`) or a new decode
  (`new`), and whether it was decoded a second time (`+re`, redecode.plan).
The hub is this process's: the bench's client shares its interpreter (light: 20 ms messages).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bench.bench_turns import MODES, TAIL_S, VARIANTS, clips, held_out, stream_retrying
from bench.common import machine, pct
from tests.support import base_config, free_port, load_pcm16, wer

Record = tuple[float, str, dict[str, Any]]  # (perf_counter, kind, fields)
LOG: list[Record] = []


def note(kind: str, **fields: Any) -> None:
    LOG.append((time.perf_counter(), kind, fields))


def watch() -> None:
    """Wrap the hub's turn endpointer, provider stream and session so that each step is noted in LOG."""
    from asrhub.engine.session import Session
    from asrhub.operators import turn
    from asrhub.providers.streaming import StreamAdapter

    te, ts, sa = turn.TurnEndpointer, turn.TurnStage, StreamAdapter

    silence, end, heard = te._silence, te._end, te.heard

    def _silence(self: Any, at: int) -> Any:
        if self._silent_run == 1:
            note("pause", offset=self._last_voiced_end)
        return silence(self, at)

    def _end(self: Any, offset: int, forced: bool = False, reason: Any = "silence",
             probability: float | None = None) -> Any:
        caller = sys._getframe(1).f_code.co_name
        rule = {"answer": "model", "heard": "model+text", "_silence": "max_silence", "flush": "flush",
                "gated": "flush"}.get(caller, caller)
        if caller == "_read_text":
            run = self._silent_run
            if self._late_frames is not None and run >= self._late_frames and turn.ends_a_sentence(self._text):
                rule = "late_text"
            elif run >= self._unbacked_frames and self._unbacked():
                rule = "unbacked"
            else:
                rule = "no_text" if reason == "silence" else "text"
        note("end", offset=offset, reason=reason, rule=rule, silence_ms=self._silent_run * 30, p=probability,
             text=self._text)
        return end(self, offset, forced, reason, probability)

    def _heard(self: Any, pause_id: int, text: str | None) -> Any:
        if pause_id == self._pause and not self._text_heard:
            note("text", text=text)
        return heard(self, pause_id, text)

    ask, answer = ts._ask, ts._answer

    def _ask(self: Any, query_id: int, audio: np.ndarray) -> None:
        note("ask", silence_ms=self.endpointer._silent_run * 30)
        ask(self, query_id, audio)

    def _answer(self: Any, query_id: int, probability: float | None) -> None:
        if query_id == self.endpointer._query:
            note("answer", p=probability)
        answer(self, query_id, probability)

    hint, end_utt, final = sa.pause_hint, sa.end_utterance, sa._final

    def pause_hint(self: Any, utterance_id: str, offset: int, on_text: Any = None) -> None:
        before = self._utt.speculative if self._utt is not None else None
        hint(self, utterance_id, offset, on_text)
        after = self._utt.speculative if self._utt is not None else None
        sched = self.provider.scheduler
        note("hint", offset=offset, started=after is not None and after is not before,
             busy=sched.running_partials + sched.final_lanes)  # (the speculation is queued: not counted yet)

    def end_utterance(self: Any, utterance_id: str, offset: int) -> None:
        hits = self.speculation_hits
        end_utt(self, utterance_id, offset)
        note("submit", offset=offset, spec=self.speculation_hits > hits)

    async def _final(self: Any, u: Any, offset: int, *args: Any) -> Any:
        again = self.redecodes
        res = await final(self, u, offset, *args)
        note("decoded", offset=offset, redecoded=self.redecodes > again)
        return res

    final_event = Session.final_event

    def _final_event(self: Any, r: Any, provider: str, language_probability: float | None = None) -> Any:
        note("final", offset=r.end, t0=self.arrival_time(r.end), text=r.text)
        return final_event(self, r, provider, language_probability)

    te._silence, te._end, te.heard = _silence, _end, _heard  # type: ignore[method-assign]
    ts._ask, ts._answer = _ask, _answer  # type: ignore[method-assign]
    sa.pause_hint, sa.end_utterance, sa._final = pause_hint, end_utterance, _final  # type: ignore[method-assign]
    Session.final_event = _final_event  # type: ignore[method-assign]


class InProcessHub:
    """`asrhub serve` with the default config, on a thread of this process."""

    def __init__(self) -> None:
        import uvicorn

        from asrhub.api.app import create_app
        from asrhub.core.config import load_config

        path = Path(tempfile.mkdtemp()) / "hub.yaml"
        path.write_text(base_config())
        cfg = load_config(path)
        cfg.server.port = free_port()
        cfg.server.grpc_enabled = False
        self.ws = f"ws://127.0.0.1:{cfg.server.port}/v1/ws"
        self.server = uvicorn.Server(uvicorn.Config(create_app(cfg), host="127.0.0.1", port=cfg.server.port,
                                                    log_level="warning", ws_max_size=16 * 1024 * 1024))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def start(self) -> InProcessHub:
        self.thread.start()
        while not self.server.started:  # bench start-up only: nothing is measured here
            time.sleep(0.1)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(30)


@dataclass
class Turn:
    clip: str
    mode: str
    held: bool
    rule: str = "?"
    ask_ms: float | None = None       # t0 -> the model asked
    p: float | None = None
    answer_ms: float | None = None    # the model's answer time (asked -> answered)
    hint_ms: float | None = None      # t0 -> the speculative decode started (None: none started)
    text_ms: float | None = None      # t0 -> its text handed back
    end_ms: float = 0.0               # t0 -> the utterance declared ended
    final_ms: float = 0.0             # t0 -> the final event (the final's latency_ms)
    busy: int = 0                     # decodes (partials, finals) already running when the speculation started
    spec: bool = False                # the final was the speculative decode
    redecoded: bool = False
    text: str = ""


def breakdown(records: list[Record], mode: str, clip: str, held: bool) -> Turn | None:
    """The components of the clip's last utterance (its turn) from the records of its session."""
    finals = [(t, f) for t, k, f in records if k == "final" and f["text"]]
    if not finals:
        return None
    t_final, last = finals[-1]
    offset, t0 = last["offset"], last["t0"]
    out = Turn(clip, mode, held, final_ms=(t_final - t0) * 1000, text=last["text"])
    ends = [(t, f) for t, k, f in records if k == "end" and f["offset"] == offset]
    if ends:
        t_end, e = ends[-1]
        out.end_ms, out.rule = (t_end - t0) * 1000, e["rule"]
    else:  # silence mode: the base endpointer's end is not watched; its SpeechEnd is the submit
        out.rule = "silence"
    for t, k, f in records:
        if k == "submit" and f["offset"] == offset:
            out.spec = f["spec"]
            if not ends:
                out.end_ms = (t - t0) * 1000
        elif k == "decoded" and f["offset"] == offset:
            out.redecoded = out.redecoded or f["redecoded"]
    # the turn's own pause: its records after the pause that began at `offset`
    starts = [i for i, (_, k, f) in enumerate(records) if k == "pause" and f["offset"] == offset]
    hints = [(t, f) for t, k, f in records if k == "hint" and f["offset"] == offset]
    if hints:
        out.hint_ms = (hints[-1][0] - t0) * 1000 if hints[-1][1]["started"] else None
        out.busy = hints[-1][1]["busy"]
    if starts:
        tail = records[starts[-1]:]
        asks = [t for t, k, _ in tail if k == "ask"]
        answers = [(t, f) for t, k, f in tail if k == "answer"]
        texts = [t for t, k, _ in tail if k == "text"]
        if asks:
            out.ask_ms = (asks[0] - t0) * 1000
        if answers:
            out.p = answers[0][1]["p"]
            out.answer_ms = (answers[0][0] - asks[0]) * 1000 if asks else None
        if texts:
            out.text_ms = (texts[0] - t0) * 1000
    return out


def fmt(v: float | None) -> str:
    return "–" if v is None else f"{v:.0f}"


async def run(languages: list[str], modes: dict[str, dict[str, Any]], limit: int | None) -> list[Turn]:
    hub = InProcessHub().start()
    turns: list[Turn] = []
    try:
        for language in languages:
            kept_out = held_out(language)
            chosen = clips(language)[:limit] if limit else clips(language)
            for c in chosen:
                pcm = load_pcm16(c.path).tobytes()
                for name, turn in modes.items():
                    start: dict[str, Any] = {"language": language, "vad": {"silence_ms": 450}}
                    if turn:
                        start["turn"] = turn
                    LOG.clear()
                    t = await stream_retrying(hub.ws, pcm, start)
                    one = breakdown(list(LOG), name, c.path.name, c.path.name in kept_out)
                    hyp = " ".join(e["text"] for e in t.events if e["type"] == "transcript.final")
                    if one is not None:
                        turns.append(one)
                        print(row(one, language), flush=True)
                    turns_wer[(language, name)].append((c.transcript, hyp))
                    finals_by_clip.setdefault(c.path.name, {"reference": c.transcript})[name] = [
                        {k: e.get(k) for k in ("type", "text", "start_ms", "end_ms", "offset_ms", "reason")}
                        for e in t.events if e["type"] in ("transcript.final", "speech.ended")]
    finally:
        hub.stop()
    return turns


turns_wer: dict[tuple[str, str], list[tuple[str, str]]] = {}
finals_by_clip: dict[str, dict[str, Any]] = {}  # clip -> its reference, and each mode's finals and ends (--finals)


def row(t: Turn, language: str) -> str:
    decode = ("spec" if t.spec else "new") + ("+re" if t.redecoded else "")
    return (f"| {language} | {t.clip}{' (held out)' if t.held else ''} | {t.mode} | {fmt(t.ask_ms)} | "
            f"{'–' if t.p is None else f'{t.p:.3f}'} | {fmt(t.answer_ms)} | {fmt(t.hint_ms)} | {fmt(t.text_ms)} | "
            f"{t.rule} | {fmt(t.end_ms)} | {fmt(t.final_ms - t.end_ms)} | {decode} | {fmt(t.final_ms)} | {t.busy} |")


def summary(turns: list[Turn], languages: list[str], modes: list[str]) -> None:
    print("\n| language | mode | final p50 / p95 ms | end decision p50 / p95 | decision -> final p50 / p95 | "
          "rules | finals: spec / new / redecoded | turns > 600 ms (rule, decision, decode) | WER (zh: CER) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for language in languages:
        for m in modes:
            ts = [t for t in turns if t.mode == m and t.clip in {c.path.name for c in clips(language)}]
            if not ts:
                continue
            rules: dict[str, int] = {}
            for t in ts:
                rules[t.rule] = rules.get(t.rule, 0) + 1
            slow = [f"{t.clip.removesuffix('.wav').removesuffix('.flac')} ({t.rule}, {t.end_ms:.0f}, "
                    f"{t.final_ms - t.end_ms:.0f})" for t in ts if t.final_ms > 600]
            pairs = turns_wer.get((language, m), [])
            if language == "zh":  # Chinese: the character error rate (the words are not spaced)
                pairs = [(" ".join(r.replace(" ", "")), " ".join(h.replace(" ", ""))) for r, h in pairs]
            w = wer([r for r, _ in pairs], [h for _, h in pairs]) if pairs else float("nan")
            fin = [t.final_ms for t in ts]
            dec = [t.end_ms for t in ts]
            dcd = [t.final_ms - t.end_ms for t in ts]
            alone = [t.text_ms - t.hint_ms for t in ts if t.text_ms is not None and t.hint_ms is not None and t.busy <= 0]
            shared = [t.text_ms - t.hint_ms for t in ts if t.text_ms is not None and t.hint_ms is not None and t.busy > 0]
            if alone or shared:
                print(f"<!-- {language} {m}: speculative decode -> text, p50 / p95 ms: started alone "
                      f"{pct(alone, 50):.0f} / {pct(alone, 95):.0f} (n {len(alone)}), beside another decode "
                      f"{pct(shared, 50):.0f} / {pct(shared, 95):.0f} (n {len(shared)}) -->")
            print(f"| {language} | {m} | {pct(fin, 50):.0f} / {pct(fin, 95):.0f} | {pct(dec, 50):.0f} / "
                  f"{pct(dec, 95):.0f} | {pct(dcd, 50):.0f} / {pct(dcd, 95):.0f} | "
                  f"{', '.join(f'{k} {v}' for k, v in sorted(rules.items()))} | "
                  f"{sum(t.spec for t in ts)} / {sum(not t.spec for t in ts)} / {sum(t.redecoded for t in ts)} | "
                  f"{len(slow)}: {'; '.join(slow)} | {w:.3f} |")


def write_finals(path: str) -> None:
    Path(path).write_text(json.dumps(finals_by_clip, ensure_ascii=False, indent=1))


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--languages", default="en,zh")
    ap.add_argument("--modes", default="silence,semantic/medium,semantic/high")
    ap.add_argument("--limit", type=int, default=0, help="only the first N clips of each language")
    ap.add_argument("--finals", default="", help="write each clip's finals and utterance ends per mode (JSON) here")
    ap.add_argument("--context-below-s", type=float, default=None,
                    help="decode pieces up to this long with their left context (StreamAdapter.context_below_s, "
                         "10 s as shipped, 4 s before 4b0f74f): the 2-pass limit a turn rule's cuts run into (BENCHMARKS)")
    args = ap.parse_args()
    if args.context_below_s is not None:
        from asrhub.providers.streaming import StreamAdapter
        StreamAdapter.context_below_s = args.context_below_s
    modes = {n: {**MODES, **VARIANTS}[n] for n in args.modes.split(",")}
    languages = args.languages.split(",")
    for language in languages:
        for m in modes:
            turns_wer[(language, m)] = []
    watch()
    print(f"# turn_breakdown — {machine()}; load average {os.getloadavg()}; each clip + {TAIL_S} s silence, "
          f"one session at a time, modes paired per clip; ms from t0 (the turn's last voiced audio at the hub)")
    print("\n| language | clip | mode | asked | P | answer took | spec decode started | its text | rule | "
          "end decided | decision -> final | final's decode | final (latency_ms) | decodes running at its start |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    turns = await run(languages, modes, args.limit or None)
    print(f"\nload average at the end {os.getloadavg()}")
    summary(turns, languages, list(modes))
    if args.finals:
        write_finals(args.finals)


if __name__ == "__main__":
    asyncio.run(main())
