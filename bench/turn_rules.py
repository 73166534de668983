"""Turn rules judged on turn_probe's answers, without running the pipeline again (issue 19).

    .venv/bin/python -m bench.turn_probe --out /tmp/turn_probe.json
    .venv/bin/python -m bench.turn_rules /tmp/turn_probe.json

Each pause alone: a rule ends a pause at the first of its steps that fires (the model's answer at the asked
silence >= threshold, or >= the Han threshold when the pause's text is Chinese; a text that ends a sentence at
the text step if the answer was >= the veto; such a text alone at the late step; max_silence), and a pause is
cut when that silence is within the silence the VAD heard there; a confident answer does not end a pause whose
text trails on, and one its text does not back (prose left open, a Chinese text under the Han threshold) ends
it at the late step (`unbacked`; without it such an answer ends an open text at once and a Han one never). The model's compute time is left out, and each
answer is the one recorded at the nearest asked silence at or below the step. Figures: the turn ends'
decision p50 / p95 (one per clip), put-in pauses cut (any pause within a put-in gap of a case), the clips'
own pauses cut; over every clip and over bench_turns.held_out's clips.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from asrhub.operators.turn import ends_a_sentence, trails_on, unclosed, written_in_han

ASKED = (60, 90, 150, 240, 360, 480, 600, 750, 1000)


@dataclass(frozen=True)
class Rule:
    ask: int = 90                 # the question (the probe asks at 90 where the hub asks at 100)
    threshold: float = 0.9
    han: float | None = 0.97      # the threshold when the pause's text is Han
    veto: float = 0.1
    text: int = 300
    late: int | None = 750
    max: int = 1200
    again: tuple[tuple[int, float], ...] = ()  # (silence, threshold) of further questions
    trail: bool = True            # a text that trails on keeps a confident answer from ending the turn
    unbacked: bool = True         # an answer its text does not back ends the turn at the late step


def answer_at(p: dict[str, float], ms: int) -> float | None:
    asked = [k for k in ASKED if k <= ms and str(k) in p]
    return p[str(asked[-1])] if asked else None


def ends_at(pause: dict[str, Any], r: Rule) -> int:
    """The silence (ms) at which rule `r` ends this pause."""
    p, text = pause["p"], pause["text"]
    times = [r.max]
    first = answer_at(p, r.ask)
    han = r.han is not None and written_in_han(text)
    if first is not None and first >= r.threshold and not (r.trail and trails_on(text)):
        if not r.unbacked:
            if first >= (r.han if han and r.han is not None else r.threshold):
                times.append(r.ask)
        elif (first < r.han) if han and r.han is not None else (not han and unclosed(text)):
            times.append(max(r.text, r.ask) if r.late is None else r.late)
        else:
            times.append(r.ask)
    if ends_a_sentence(text):
        if first is None or first >= r.veto:
            times.append(max(r.text, r.ask))
        if r.late is not None:
            times.append(r.late)
    for ms, t in r.again:
        q = answer_at(p, ms)
        if q is not None and q >= t:
            times.append(ms)
    return min(times)


def judge(pauses: list[dict[str, Any]], r: Rule, only: set[str] | None = None) -> dict[str, Any]:
    last = {x["clip"]: i for i, x in enumerate(pauses) if x["kind"] == "end" and x["p"]}  # the turn's real end
    ends: list[int] = []
    cut: dict[tuple[str, int], bool] = {}
    own = 0
    for i, x in enumerate(pauses):
        if only is not None and x["clip"] not in only:
            continue
        t = ends_at(x, r)
        if x["kind"] == "end":
            if last.get(x["clip"]) == i:
                ends.append(t)
        elif x["kind"] == "put":
            key = (x["clip"], x["case"])
            cut[key] = cut.get(key, False) or t <= x["length_ms"]
        elif x["case"] == 0 and t <= x["length_ms"]:
            own += 1
    e = np.array(ends, dtype=float)
    return {"turns": len(ends), "p50": float(np.percentile(e, 50)) if len(e) else float("nan"),
            "p95": float(np.percentile(e, 95)) if len(e) else float("nan"), "slow": int((e > 600).sum()),
            "cuts": sum(cut.values()), "of": len(cut), "own": own}


def held(pauses: list[dict[str, Any]]) -> set[str]:
    """bench_turns.held_out (every third clip), from the probe's own clip order."""
    names = list(dict.fromkeys(x["clip"] for x in pauses))
    return {n for i, n in enumerate(names) if i % 3 == 2}


#: the rules BENCHMARKS reports (medium / high as shipped, the second slice's, and what was tried)
RULES: dict[str, Rule] = {
    "silence 450 ms": Rule(ask=450, threshold=-1.0, han=None, text=450, late=None, max=450),
    "medium (shipped)": Rule(),
    "medium, fourth slice (no unbacked step)": Rule(unbacked=False),
    "medium, without the trailing-on cue": Rule(trail=False, unbacked=False),
    "medium, second slice": Rule(han=None, late=None, max=1500, trail=False, unbacked=False),
    "medium, late 600": Rule(late=600),
    "medium, asked again at 600 ms (0.95)": Rule(again=((600, 0.95),)),
    "medium, asked again at 480 ms (0.98)": Rule(again=((480, 0.98),)),
    "medium, asked again at 750 ms (0.9)": Rule(again=((750, 0.9),)),
    "medium, Han 0.95": Rule(han=0.95),
    "medium, max 1000": Rule(max=1000),
    "high (shipped)": Rule(ask=60, han=0.95, veto=0.05, text=200, max=1000),
    "high, no unbacked step": Rule(ask=60, han=0.95, veto=0.05, text=200, max=1000, unbacked=False),
    "high, late 600": Rule(ask=60, han=0.95, veto=0.05, text=200, late=600, max=1000),
}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("probe", nargs="?", default="/tmp/turn_probe.json")
    args = ap.parse_args()
    data = json.loads(Path(args.probe).read_text())
    for language, pauses in data.items():
        kept = held(pauses)
        print(f"\n{language} (held out: {', '.join(sorted(kept))})\n")
        print("| rule | turn end p50 / p95 ms | turns > 600 ms | put-in pauses cut | own pauses cut | held out: "
              "p95 | held out: cut |\n|---|---|---|---|---|---|---|")
        for name, r in RULES.items():
            a, h = judge(pauses, r), judge(pauses, r, kept)
            print(f"| {name} | {a['p50']:.0f} / {a['p95']:.0f} | {a['slow']} of {a['turns']} | {a['cuts']} of "
                  f"{a['of']} | {a['own']} | {h['p95']:.0f} | {h['cuts']} of {h['of']} |")


if __name__ == "__main__":
    main()
