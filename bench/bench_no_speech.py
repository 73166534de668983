"""The multilingual route's no-speech threshold on English (issue 23, item 3 of the helper brief): whisper_multi
(bundled:base) with `language: en`, its `no_speech_threshold` at each value asked, over the English clips.

    .venv/bin/python -m bench.bench_no_speech [--thresholds 0.45 0.6] [--set dev|varied|all] [--realtime 2]
        [--language en] [--show]

One hub per threshold (the default config, whisper_multi's `no_speech_threshold` set), all up at once, each clip
streamed to every hub in turn (paired: the same load for both), `start: {language, provider: whisper_multi}`:
`stream` = the clip then 1 s of silence, `ptt` = the clip cut at its last voiced frame and `stop`. WER pooled
(tests/support normaliser). A threshold that drops English words shows as more deletions, and the last columns
count clips whose finals at that threshold have fewer words than at the highest threshold asked. Errors (a final
late under load: provider_error) are listed; that clip's text is then what came.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

from bench.bench_accuracy import items
from bench.common import machine
from tests.support import (
    HubProcess,
    base_config,
    final_text,
    last_voiced_end,
    load_pcm16,
    normalise,
    wer,
    ws_stream,
)

MODES = ("stream", "ptt")


def config(threshold: float) -> str:
    cfg = yaml.safe_load(base_config())
    cfg["providers"]["instances"]["whisper_multi"]["no_speech_threshold"] = threshold
    return str(yaml.safe_dump(cfg, allow_unicode=True, sort_keys=False))


async def run(thresholds: list[float], which: str, realtime: float, language: str, show: bool) -> None:
    clips = items(which)
    hubs = [HubProcess(config(t), Path(tempfile.mkdtemp())).start(timeout=300) for t in thresholds]
    hyps: dict[tuple[float, str], list[str]] = {(t, m): [] for t in thresholds for m in MODES}
    start = {"language": language, "provider": "whisper_multi"}
    errors: list[str] = []
    load0 = os.getloadavg()
    t0 = time.perf_counter()
    try:
        for c in clips:
            pcm = load_pcm16(c.path)
            audio = {"stream": np.concatenate([pcm, np.zeros(16000, dtype=np.int16)]), "ptt": pcm[:last_voiced_end(pcm)]}
            for m in MODES:
                for t, hub in zip(thresholds, hubs, strict=True):
                    ev = await ws_stream(hub.ws, audio[m].tobytes(), realtime=realtime, start=start, timeout=300)
                    for e in ev:  # a final late under load (provider_error) is counted, and its text is missing
                        if e["type"] == "error":
                            errors.append(f"{t:g} {m} {c.path.name}: {e['code']} {e['message']}")
                    hyps[(t, m)].append(final_text(ev))
    finally:
        for hub in hubs:
            hub.stop()
    load1 = os.getloadavg()
    print(f"# bench_no_speech — {machine()}; whisper_multi, language {language}; {len(clips)} clips ({which}); "
          f"x{realtime}; load average {load0[0]:.1f} -> {load1[0]:.1f}; {time.perf_counter() - t0:.0f} s")
    top = max(thresholds)
    print("| no_speech_threshold | " + " | ".join(f"{m} WER" for m in MODES)
          + " | " + " | ".join(f"{m}: clips with fewer words than at {top:g}" for m in MODES) + " |")
    print("|---|" + "---|" * (2 * len(MODES)))
    refs = [c.transcript for c in clips]
    for t in thresholds:
        cells = [f"{100 * wer(refs, hyps[(t, m)]):.1f} %" for m in MODES]
        fewer = [sum(len(normalise(a).split()) < len(normalise(b).split())
                     for a, b in zip(hyps[(t, m)], hyps[(top, m)], strict=True)) for m in MODES]
        print(f"| {t:g} | " + " | ".join(cells) + " | " + " | ".join(str(n) for n in fewer) + " |")
    for e in errors:
        print(f"error: {e}")
    if show:
        for i, c in enumerate(clips):
            print(f"\n{c.path.name}\n  ref {c.transcript}")
            for t in thresholds:
                for m in MODES:
                    print(f"  {t:<5g}{m:7} {hyps[(t, m)][i]}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--thresholds", type=float, nargs="+", default=[0.45, 0.6])
    ap.add_argument("--set", default="all", choices=["dev", "varied", "all"])
    ap.add_argument("--realtime", type=float, default=2.0)
    ap.add_argument("--language", default="en")
    ap.add_argument("--show", action="store_true", help="print every hypothesis")
    a = ap.parse_args()
    asyncio.run(run(a.thresholds, a.set, a.realtime, a.language, a.show))


if __name__ == "__main__":
    main()
