"""Language ID on short commands (issue 23): base's answer per cut for the encoder window padded to each length.

    .venv/bin/python -m bench.bench_short_lid [--windows 0 5 10 30]

The cuts of tests/test_short_commands.py and seven more (words and short phrases of 0.5-1.1 s from tests/data
recordings), each with the 0.2 s of silence before and 0.18 s after that a hub's utterance gives it. Window 0: the
audio's own length (whole seconds, no padding), as `CT2Whisper.detect_language` did for every length before;
N: padded with silence to N s (the hub now pads audio under `SHORT_LID_S` to `SHORT_LID_WINDOW_S`). Per cut, the
top answer and its probability; a session moves when it is >= engine.routing.MIN_P. CPU ms per call: process
CPU time (the model's one thread).
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

from bench.common import machine
from tests.test_short_commands import COMMANDS, Command

MORE = [
    Command("speech/en_jfk.flac", 0.28, 1.31, "And so", "en"),
    Command("speech/en_libri_1089-134686-0000.flac", 1.50, 2.56, "stew for dinner", "en"),
    Command("speech/zh_funasr_asr_example.wav", 3.36, 4.46, "语音识别", "zh"),
    Command("speech/zh_aishell3_SSB09130033.wav", 3.32, 4.05, "看来", "zh"),
    Command("speech/zh_aishell3_SSB06710128.wav", 2.00, 2.52, "恋情", "zh"),
    Command("speech/zh_aishell3_SSB02410161.wav", 0.36, 0.94, "娱乐", "zh"),
    Command("speech/zh_aishell3_SSB10560454.wav", 0.00, 0.70, "基地", "zh"),
]


def main() -> None:
    import ctranslate2
    from faster_whisper import WhisperModel
    from faster_whisper.audio import pad_or_trim

    from asrhub.engine.routing import MIN_P
    from asrhub.providers.models import resolve_ct2_model

    ap = argparse.ArgumentParser()
    ap.add_argument("--windows", type=float, nargs="+", default=[0, 5, 10, 30])
    a = ap.parse_args()
    m = WhisperModel(str(resolve_ct2_model("bundled:base", provider="bench")), compute_type="int8", cpu_threads=1)

    def lid(audio: np.ndarray, window_s: float) -> tuple[str, float]:
        feats = m.feature_extractor(audio)
        n = feats.shape[-1]
        frames = max(100, n + (-n) % 100, int(window_s * 100))
        batch = np.ascontiguousarray(pad_or_trim(feats, frames)[None].astype(np.float32))
        enc = m.model.encode(ctranslate2.StorageView.from_array(batch))
        token, p = m.model.detect_language(enc)[0][0]
        return token.strip("<|>"), float(p)

    load0 = os.getloadavg()
    cpu = dict.fromkeys(a.windows, 0.0)
    right = {w: 0 for w in a.windows}
    rows = []
    cuts = COMMANDS + MORE
    for c in cuts:
        pcm = c.pcm().astype(np.float32) / 32768
        audio = np.concatenate([np.zeros(3200, np.float32), pcm, np.zeros(2880, np.float32)])
        cells = []
        for w in a.windows:
            t0 = time.process_time()
            lang, p = lid(audio, w)
            cpu[w] += time.process_time() - t0
            moves_right = lang == c.language if p >= MIN_P else c.language == "en"  # unmoved: the default, English
            right[w] += moves_right
            cells.append(f"{'' if moves_right else '**'}{lang} {p:.2f}{'' if moves_right else '**'}")
        rows.append(f"| {c.words} ({c.end - c.start:.2f} s) | " + " | ".join(cells) + " |")
    print(f"# bench_short_lid — {machine()}; bundled:base int8, one thread; {len(cuts)} cuts; "
          f"load average {load0[0]:.1f} -> {os.getloadavg()[0]:.1f}")
    print("| cut | " + " | ".join("own length" if not w else f"padded to {w:g} s" for w in a.windows) + " |")
    print("|---|" + "---|" * len(a.windows))
    print("\n".join(rows))
    print("| routed right (**wrong**) | " + " | ".join(f"{right[w]}/{len(cuts)}" for w in a.windows) + " |")
    print("| CPU ms per call | " + " | ".join(f"{1000 * cpu[w] / len(cuts):.0f}" for w in a.windows) + " |")


if __name__ == "__main__":
    main()
