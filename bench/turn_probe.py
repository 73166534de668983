"""What the turn model and the recogniser say at each pause, for choosing turn mode's rule (issue 19).

    .venv/bin/python -m bench.turn_probe [--languages en,zh] [--out /tmp/turn_probe.json]

For every clip of bench_turns (the clip as one turn + 3.5 s of a quiet room, and the clip with an 800 ms pause put
in at each held-out cut point) the real VAD finds every pause of the utterance (silence mode at 1.5 s, so no
pause ends it early); at each pause this records Smart Turn's P(complete) asked at 60, 90, 150, 240, 360, 480,
600, 750 and 1000 ms of silence, the recogniser's text at 90 ms (a real greedy decode of the utterance so far
with the tail the final decodes), the pause's length and what it is (the turn's end, a put-in pause, one of the clip's own). A rule is
then judged on these without running the pipeline again (bench/turn_rules.py).
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from asrhub.core.audio import AudioChunk, ms_to_samples
from asrhub.core.commands import AudioSpec, VadOptions
from asrhub.core.config import PipelineConfig
from asrhub.operators.endpoint import Endpointer
from asrhub.operators.pipeline import build_spec, make_classifier
from asrhub.operators.turn_model import WINDOW, get_runner
from bench.bench_turns import RATE, TAIL_S, Reader, clips, noise
from tests.support import last_voiced_end, load_pcm16

ASK_MS = (60, 90, 150, 240, 360, 480, 600, 750, 1000)
FRAME = 480


@dataclass
class Pause:
    clip: str
    kind: str                 # "end" (the turn's end), "put" (a put-in mid-sentence pause), "own"
    case: int                 # 0: the whole clip; 1..3: with a put-in pause
    offset: int               # end of the last voiced frame
    length_ms: int            # silence until speech resumed (10 000: the turn's end)
    p: dict[str, float] = field(default_factory=dict)   # asked at ms -> P(complete)
    text: str = ""            # the recogniser's text at 90 ms


class Recorder(Endpointer):
    """Silence mode at 1.5 s that keeps, for every pause, the audio the model would be asked on."""

    def __init__(self) -> None:
        spec = build_spec(AudioSpec(), VadOptions(silence_ms=1500), PipelineConfig())
        super().__init__(make_classifier(spec), spec.vad)
        self.pauses: list[tuple[int, int, int, dict[int, np.ndarray]]] = []  # utt start, offset, run frames, audios
        self._asks = {max(1, ms_to_samples(ms) // FRAME): ms for ms in ASK_MS}

    def _silence(self, end: int) -> None:  # type: ignore[override]
        run = self._silent_run
        if run == 1:
            self.pauses.append((self._utt_start, self._last_voiced_end, 1, {}))
        start, off, _, audios = self.pauses[-1]
        self.pauses[-1] = (start, off, run, audios)
        if run in self._asks:
            audios[self._asks[run]] = (start, end)  # type: ignore[assignment]
        if run >= self._silence_frames:
            return self._end(self._last_voiced_end)  # type: ignore[return-value]
        return None


def probe_one(pcm: np.ndarray, name: str, case: int, gap: tuple[int, int] | None, end: int,
              reader: Reader, language: str) -> list[Pause]:
    rec = Recorder()
    rec.push(AudioChunk(pcm, 0))
    runner = get_runner()
    model = runner.load()
    out = []
    for start, off, run, asks in rec.pauses:
        if gap is not None and gap[0] - RATE * 0.3 <= off <= gap[1]:
            kind = "put"
        elif off >= end - RATE * 0.1:
            kind = "end"
        else:
            kind = "own"
        if kind == "end" and gap is not None:
            continue  # the turn's end is probed once, on the whole clip
        length = 10_000 if kind == "end" else run * 30
        items = sorted(asks.items())
        audios = [pcm[max(s, e - WINDOW, 0):e] for _, (s, e) in items]  # type: ignore[misc]
        probs = model.predict(audios) if audios else []
        p = {str(ms): round(v, 4) for (ms, _), v in zip(items, probs, strict=True)}
        text = reader.text(pcm[start:off + ms_to_samples(90)], language) if 90 in asks else ""
        out.append(Pause(name, kind, case, off, length, p, text))
    return out


def probe(language: str) -> list[Pause]:
    reader = Reader()
    rng = np.random.default_rng(0)
    out: list[Pause] = []
    for c in clips(language):
        speech = load_pcm16(c.path)
        tail = noise(int(TAIL_S * RATE), rng)
        end = last_voiced_end(speech)
        out += probe_one(np.concatenate([speech, tail]), c.path.name, 0, None, end, reader, language)
        for i, g in enumerate(reader.gaps(speech, language), 1):
            gap = noise(800 * RATE // 1000, rng)
            pcm = np.concatenate([speech[:g], gap, speech[g:], tail])
            out += probe_one(pcm, c.path.name, i, (g, g + len(gap)), end + len(gap), reader, language)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--languages", default="en,zh")
    ap.add_argument("--out", default="/tmp/turn_probe.json")
    args = ap.parse_args()
    res = {lang: [asdict(p) for p in probe(lang)] for lang in args.languages.split(",")}
    Path(args.out).write_text(json.dumps(res, ensure_ascii=False, indent=0))
    print(f"wrote {args.out}: " + ", ".join(f"{k} {len(v)} pauses" for k, v in res.items()))


if __name__ == "__main__":
    main()
