"""Encoder time of tiny.en (or `--model`) by window length, one thread (issue 23: the cost of a final's minimum window).

    .venv/bin/python -m bench.bench_window_cost [--windows 3 5 8 10 15 20 30] [--repeats 15] [--model bundled:base]

Each window is encoded `--repeats` times (after two warm-up passes) on a real clip's features padded or cut
to it; the median and the fastest are printed in ms. int8, `cpu_threads` 1, as one scheduler lane runs it.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np


def main() -> None:
    import ctranslate2
    from faster_whisper import WhisperModel
    from faster_whisper.audio import pad_or_trim

    from asrhub.providers.models import resolve_ct2_model
    from bench.common import machine
    from tests.support import SPEECH, load_pcm16

    ap = argparse.ArgumentParser()
    ap.add_argument("--windows", nargs="+", type=float, default=[3, 5, 8, 10, 15, 20, 30])
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--model", default="bundled:tiny.en")
    a = ap.parse_args()
    model = WhisperModel(str(resolve_ct2_model(a.model, provider="bench")), device="cpu",
                         compute_type="int8", cpu_threads=1)
    audio = load_pcm16(SPEECH / "en_libri_1221-135766-0002.wav").astype(np.float32) / 32768.0
    feats = model.feature_extractor(audio)
    print(f"machine: {machine()}; {a.model}")
    print("| window s | encoder ms median | fastest |")
    print("|---|---|---|")
    for w in a.windows:
        batch = np.ascontiguousarray(pad_or_trim(feats, int(w * 100))[None].astype(np.float32))
        times = []
        for i in range(a.repeats + 2):
            t = time.perf_counter()
            model.model.encode(ctranslate2.StorageView.from_array(batch))
            if i >= 2:
                times.append(1000 * (time.perf_counter() - t))
        print(f"| {w:g} | {statistics.median(times):.0f} | {min(times):.0f} |", flush=True)


if __name__ == "__main__":
    main()
