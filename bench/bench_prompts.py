"""Mandarin and an initial prompt (issue 23 item 3): bundled:base offline CER over the Mandarin dev clips,
with no prompt and with the Simplified-Chinese prompts known to steer Whisper.

    .venv/bin/python -m bench.bench_prompts [--beam 5]

Scored as DESIGN says: Simplified (OpenCC), punctuation and spaces removed, CER over all clips together.
"""

from __future__ import annotations

import argparse
import re

import jiwer
import numpy as np

from asrhub.providers.localise import localise_text
from asrhub.providers.models import resolve_ct2_model
from bench.common import SPEECH_ROOT, machine
from tests.support import load_pcm16, manifest

PROMPTS: list[str | None] = [None, "以下是普通话的句子。", "简体中文。"]


def chars(text: str) -> str:
    return re.sub(r"[\W_]+", "", localise_text(text, "zh"))


def main() -> None:
    from faster_whisper import WhisperModel

    ap = argparse.ArgumentParser()
    ap.add_argument("--beam", type=int, default=5)
    args = ap.parse_args()
    model = WhisperModel(str(resolve_ct2_model("bundled:base", provider="bench")), device="cpu", compute_type="int8")
    clips = [c for c in manifest(SPEECH_ROOT) if c.language == "zh" and c.transcript]
    print(f"# bench_prompts — {machine()}; {len(clips)} Mandarin clips, bundled:base, beam {args.beam}\n")
    print("| initial prompt | CER |\n|---|---|")
    for prompt in PROMPTS:
        refs, hyps = [], []
        for c in clips:
            audio = load_pcm16(c.path).astype(np.float32) / 32768
            segs, _ = model.transcribe(audio, language="zh", beam_size=args.beam, initial_prompt=prompt,
                                       vad_filter=False, condition_on_previous_text=False)
            refs.append(chars(c.transcript))
            hyps.append(chars("".join(s.text for s in segs)))
        print(f"| {prompt or '(none)'} | {jiwer.cer(refs, hyps) * 100:.1f} % |")


if __name__ == "__main__":
    main()
