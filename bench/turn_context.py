"""The 2-pass left-context length limit (`StreamAdapter.context_below_s`) paired on bench_accuracy's clips.

    .venv/bin/python -m bench.turn_context [--values 4 10] [--set all] [--modes stream ptt]

A turn rule cuts a sentence before a long rest of it, and the piece after the cut is decoded with the
finals before it in front only when it is at most `context_below_s` long (issue 19, BENCHMARKS sixth
slice). This bench asks what the limit does to silence mode and push-to-talk: one real hub per value (the
default config, the limit set in the hub's process), every English dev + varied clip streamed to each hub
in turn (the arms alternate which goes first, clip by clip, so the load is shared), in bench_accuracy's two
modes (`stream`: the clip + 1 s of silence, then stop; `ptt`: the clip cut at its last voiced frame, then
stop). WER is pooled per set as bench_accuracy pools it; the clips whose text differs are listed.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from pathlib import Path

import numpy as np

from bench.bench_accuracy import items, streamed
from bench.common import machine
from tests.support import HubProcess, base_config, last_voiced_end, load_pcm16, wer

# the hub's own entry point with the limit set first (HubProcess appends `serve --config ...`)
_HUB = ("import sys; from asrhub.providers.streaming import StreamAdapter; "
        "StreamAdapter.context_below_s = float(sys.argv.pop(1)); "
        "from asrhub.cli import main; raise SystemExit(main())")


def hub_with(value: float, tmp: Path) -> HubProcess:
    return HubProcess(base_config(), tmp, command=[sys.executable, "-c", _HUB, str(value)])


async def run(values: list[float], which: str, modes: list[str], realtime: float) -> None:
    clips = items(which)
    tmp = Path(tempfile.mkdtemp())
    hubs = [hub_with(v, tmp).start() for v in values]
    hyps: dict[tuple[float, str], list[str]] = {(v, m): [] for v in values for m in modes}
    try:
        for i, c in enumerate(clips):
            pcm = load_pcm16(c.path)
            inputs = {"stream": np.concatenate([pcm, np.zeros(16000, dtype=np.int16)]),
                      "ptt": pcm[:last_voiced_end(pcm)]}
            order = list(zip(values, hubs, strict=True))
            for v, hub in order if i % 2 == 0 else order[::-1]:
                for m in modes:
                    hyps[(v, m)].append(await streamed(hub.ws, inputs[m], realtime))
            print(f"{i + 1}/{len(clips)} {c.path.name}", file=sys.stderr)
    finally:
        for hub in hubs:
            hub.stop()
    print(f"machine: {machine()}; {len(clips)} clips, realtime x{realtime}")
    groups = {g: [i for i, c in enumerate(clips) if c.group == g] for g in ("dev", "varied")}
    groups["all"] = list(range(len(clips)))
    print("| context_below_s | " + " | ".join(f"{g} {m} WER" for g in groups for m in modes) + " |")
    print("|---|" + "---|" * (len(groups) * len(modes)))
    for v in values:
        cells = [f"{100 * wer([clips[i].transcript for i in idx], [hyps[(v, m)][i] for i in idx]):.1f} %"
                 for idx in groups.values() for m in modes]
        print(f"| {v:g} s | " + " | ".join(cells) + " |")
    for m in modes:
        for i, c in enumerate(clips):
            texts = {v: hyps[(v, m)][i] for v in values}
            if len(set(texts.values())) > 1:
                print(f"\n{m} {c.path.name}\n  ref   {c.transcript}")
                for v, t in texts.items():
                    e = wer([c.transcript], [t])
                    print(f"  {v:<5g} {t}   (WER {100 * e:.1f} %)")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--values", nargs="+", type=float, default=[4.0, 10.0], help="context_below_s per hub (s)")
    ap.add_argument("--set", default="all", choices=["dev", "varied", "all"])
    ap.add_argument("--modes", nargs="+", default=["stream", "ptt"], choices=["stream", "ptt"])
    ap.add_argument("--realtime", type=float, default=1.0, help="audio pace (2 = twice real time)")
    a = ap.parse_args()
    asyncio.run(run(a.values, a.set, a.modes, a.realtime))


if __name__ == "__main__":
    main()
