"""A final's minimum encoder window, A/B on real speech, in process and deterministic (issue 23).

    .venv/bin/python -m bench.bench_window [--set dev|varied|all] [--windows 0 5 10 15] [--show]
    .venv/bin/python -m bench.bench_window --commands [--windows 0 5 10 15]
    .venv/bin/python -m bench.bench_window --mandarin [--windows 0 5 10 15]
    .venv/bin/python -m bench.bench_window --mandarin-streams [--windows 0 5 10 15]

`CT2Whisper` encodes each utterance in a window of its own length + `pad_s`, in whole seconds. Whisper
learnt on 30 s windows, where short speech sits in silence; this bench decodes every final in a window of
at least N s (CT2Whisper's features padded with zeros, as it pads them; 0 = its own length; partials
always their own length) and pools WER per set and mode. The streams are bench_promise's: the hub's endpointer and a StreamAdapter on tiny.en, partials
at fixed audio ends, each answered before the next chunk (deterministic: load only slows it). The arms run
interleaved per clip. `--commands`: tests/test_short_commands.py's English commands (0.5 s of silence, the
word or phrase), each final printed and checked for a self-repeat or a loop. `--partials`: partials are
encoded in the minimum window too (a promise is made from partials, and a final continues it). `--mandarin`:
each Mandarin clip of the dev set decoded whole as one final (base, beam 5, `language: zh`, as the default
config's whisper_multi), CER pooled per window: the window's effect on the multilingual model, not a stream;
`--mandarin-streams`: the same clips through bench_promise's streams on that provider, both modes.
"""

from __future__ import annotations

import argparse
import asyncio
import threading
import time
from typing import Any

import numpy as np

from asrhub.providers.base import Result, TranscribeOptions
from asrhub.providers.whisper_ct2 import N_FRAMES, CT2Whisper
from bench.bench_promise import MODES, by_group, final_text, stream_clip
from tests.support import load_pcm16, wer

_window_s = [0.0]  # the arm running now
_partials = [False]  # the window applies to partials too
_decode_batch = CT2Whisper.decode_batch
_features = CT2Whisper._features
_final = threading.local()


def _decode_batch_marked(self: CT2Whisper, audios: list[np.ndarray], opts: list[TranscribeOptions],
                         beam_size: int) -> list[Result]:
    _final.on = not opts[0].interim
    return _decode_batch(self, audios, opts, beam_size)


def _features_padded(self: CT2Whisper, audios: list[np.ndarray], min_frames: int = 0) -> tuple[np.ndarray, list[int]]:
    """The provider's features, padded as it pads them (zeros) to the arm's window for a final. The arm's
    window stands for the provider's own `min_final_window_s` (whisper_multi's 10 s in the default config):
    arm 0 is each utterance's own length."""
    batch, lengths = _features(self, audios)
    want = min(N_FRAMES, int(_window_s[0] * 100)) if _partials[0] or getattr(_final, "on", False) else 0
    if batch.shape[-1] < want:
        batch = np.ascontiguousarray(np.pad(batch, ((0, 0), (0, 0), (0, want - batch.shape[-1]))))
    return batch, lengths


def _patch() -> None:
    CT2Whisper.decode_batch = _decode_batch_marked  # type: ignore[method-assign]
    CT2Whisper._features = _features_padded  # type: ignore[method-assign]


async def run(which: str, windows: list[float], show: bool) -> None:
    from bench.bench_accuracy import items
    from bench.common import machine

    _patch()
    clips = items(which)
    hyps: dict[tuple[float, str], list[str]] = {(w, m): [] for w in windows for m in MODES}
    t0 = time.monotonic()
    for c in clips:
        pcm = load_pcm16(c.path)
        for m, ptt in MODES.items():
            for w in windows:
                _window_s[0] = w
                hyps[(w, m)].append(final_text(await stream_clip(pcm, ptt)))
        if show:
            print(f"\n{c.path.name} ({c.group})\n  ref {c.transcript}", flush=True)
            for m in MODES:
                base = hyps[(windows[0], m)][-1]
                print(f"  {m:17} {windows[0]:>4} {base}")
                for w in windows[1:]:
                    if hyps[(w, m)][-1] != base:
                        print(f"  {m:17} {w:>4} {hyps[(w, m)][-1]}")
    print(f"\nmachine: {machine()}; {len(clips)} clips; {time.monotonic() - t0:.0f} s")
    print("| clips | n | min final window s | " + " | ".join(MODES) + " |")
    print("|---|---|---|" + "---|" * len(MODES))
    for g, idx, refs in by_group(clips):
        for w in windows:
            cells: list[Any] = [f"{100 * wer(refs, [hyps[(w, m)][i] for i in idx]):.1f} %" for m in MODES]
            print(f"| {g} | {len(idx)} | {w:g} | " + " | ".join(cells) + " |")


async def commands(windows: list[float]) -> None:
    from asrhub.providers.text_guard import loops, self_repeat
    from tests.test_short_commands import COMMANDS

    _patch()
    bad = {w: 0 for w in windows}
    errs: dict[float, list[float]] = {w: [] for w in windows}
    for c in [c for c in COMMANDS if c.language == "en"]:
        pcm = np.concatenate([np.zeros(8000, dtype=np.int16), c.pcm()])
        for m, ptt in MODES.items():
            for w in windows:
                _window_s[0] = w
                text = final_text(await stream_clip(pcm, ptt))
                repeat = bool(self_repeat(text) or loops(text))
                bad[w] += repeat
                errs[w].append(wer([c.words], [text]))
                print(f"{c.words:18} {m:17} {w:>4} {text!r}{'  REPEAT' if repeat else ''}", flush=True)
    for w in windows:
        print(f"window {w:g} s: mean WER {100 * sum(errs[w]) / len(errs[w]):.1f} %, repeats/loops {bad[w]}")


MULTI = {"model": "bundled:base", "beam_size": 5, "no_speech_threshold": 0.45}  # config.yaml's whisper_multi


async def mandarin_streams(windows: list[float]) -> None:
    import jiwer

    from bench.bench_mandarin import chars
    from bench.common import machine

    _patch()
    clips = _mandarin_clips()
    hyps: dict[tuple[float, str], list[str]] = {(w, m): [] for w in windows for m in MODES}
    for name, _ref in clips:
        pcm = load_pcm16(_speech_root() / name)
        for m, ptt in MODES.items():
            for w in windows:
                _window_s[0] = w
                hyps[(w, m)].append(final_text(await stream_clip(pcm, ptt, language="zh", options=MULTI)))
                print(f"{name:34} {m:17} {w:>4} {hyps[(w, m)][-1]}", flush=True)
    refs = [chars(r) for _n, r in clips]
    print(f"machine: {machine()}; {len(clips)} clips, streams on base")
    for w in windows:
        cells = [f"{100 * jiwer.cer(refs, [chars(h) or '∅' for h in hyps[(w, m)]]):.1f} %" for m in MODES]
        print(f"window {w:g} s: CER " + " / ".join(cells))


_root: list[Any] = []  # --root: another set in the speech set's shape (bench.zh_classes --out)


def _speech_root() -> Any:
    from bench.common import SPEECH_ROOT

    return _root[0] if _root else SPEECH_ROOT


def _mandarin_clips() -> list[tuple[str, str]]:
    import csv

    with open(_speech_root() / "MANIFEST.tsv", newline="", encoding="utf-8") as f:
        return [(r["file"], r["transcript"]) for r in csv.DictReader(f, delimiter="\t") if r["language"] == "zh"]


def mandarin(windows: list[float]) -> None:
    import jiwer
    from faster_whisper import WhisperModel

    from asrhub.providers.models import resolve_ct2_model
    from asrhub.providers.whisper_ct2 import Thresholds
    from bench.bench_mandarin import chars
    from bench.common import SPEECH_ROOT, machine

    _patch()
    clips = _mandarin_clips()
    model = WhisperModel(str(resolve_ct2_model("bundled:base", provider="bench")), device="cpu",
                         compute_type="int8", cpu_threads=1)
    ct2 = CT2Whisper(model, Thresholds(0.45, -1.0, 2.4))
    hyps: dict[float, list[str]] = {w: [] for w in windows}
    for name, _ref in clips:
        audio = load_pcm16(SPEECH_ROOT / name).astype(np.float32) / 32768.0
        for w in windows:
            _window_s[0] = w
            hyps[w].append(ct2.decode_batch([audio], [TranscribeOptions(language="zh")], 5)[0].text)
            print(f"{name:34} {w:>4} {hyps[w][-1]}", flush=True)
    refs = [chars(r) for _n, r in clips]
    print(f"machine: {machine()}; {len(clips)} clips")
    for w in windows:
        print(f"window {w:g} s: CER {100 * jiwer.cer(refs, [chars(h) or '∅' for h in hyps[w]]):.1f} %")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--set", default="all", choices=["dev", "varied", "all"])
    ap.add_argument("--windows", nargs="+", type=float, default=[0, 5, 10, 15])
    ap.add_argument("--show", action="store_true", help="print every final (other windows only where they differ)")
    ap.add_argument("--commands", action="store_true", help="the short commands of tests/test_short_commands.py")
    ap.add_argument("--mandarin", action="store_true", help="the Mandarin clips, each decoded whole by base")
    ap.add_argument("--mandarin-streams", action="store_true", help="the Mandarin clips streamed on base")
    ap.add_argument("--root", help="--mandarin-streams: a set with a MANIFEST.tsv (e.g. bench.zh_classes --out)")
    ap.add_argument("--partials", action="store_true", help="partials get the minimum window too, not only finals")
    a = ap.parse_args()
    _partials[0] = a.partials
    if a.root:
        from pathlib import Path

        _root.append(Path(a.root))
    if a.mandarin_streams:
        asyncio.run(mandarin_streams(a.windows))
        return
    if a.mandarin:
        mandarin(a.windows)
        return
    asyncio.run(commands(a.windows) if a.commands else run(a.set, a.windows, a.show))


if __name__ == "__main__":
    main()
