"""Turn-taking: silence mode against semantic mode at each eagerness, on real speech (issue 19).

    .venv/bin/python -m bench.bench_turns [--hub] [--silence-ms 450]

Each English clip (one read passage: a turn) is followed by 3.5 s of silence.
- Endpointing (always; the pipeline alone, the real VAD and turn model, no recogniser): how long after the
  end of the turn's speech the utterance is declared ended (audio waited + the model's answer time), how
  often a turn is cut before its end (an utterance that ends inside the clip: a false cut, the clips being
  single turns), and the turn model's CPU per audio second.
- `--hub`: the same clips streamed to a real hub at real-time pace (one session per mode, the modes at
  once): end of speech -> transcript.final (the final's `latency_ms`: audio of the utterance end received ->
  final sent) on each turn's last utterance, and WER.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from asrhub.core.commands import AudioSpec, TurnOptions, VadOptions
from asrhub.core.config import PipelineConfig
from asrhub.operators.base import Item, SpeechEnd
from asrhub.operators.pipeline import Pipeline, build_spec
from asrhub.operators.turn_model import get_runner
from bench.common import SPEECH_ROOT, machine, p50_p95, stream_timed
from tests.support import Clip, HubProcess, base_config, english, last_voiced_end, load_pcm16, wer

TAIL_S = 3.5  # past the longest max_silence_ms (low: 3 s)
MODES: dict[str, dict[str, Any]] = {"silence": {}, **{f"semantic/{e}": {"mode": "semantic", "eagerness": e}
                                                      for e in ("high", "medium", "low")}}


def clips() -> list[Clip]:
    out = [c for c in english(SPEECH_ROOT) if c.seconds < 30]  # the sonnet is 14 lines, not one turn
    varied = SPEECH_ROOT / "varied"
    if (varied / "MANIFEST.tsv").exists():
        out += [c for c in english(varied) if c.seconds < 30]
    return out


@dataclass
class Turns:
    delays_ms: list[float] = field(default_factory=list)   # end of the turn's speech -> its end declared
    cuts: int = 0                                           # utterances ended inside a turn
    turns: int = 0
    reasons: dict[str, int] = field(default_factory=dict)
    audio_s: float = 0.0
    model_s: float = 0.0                                    # turn model thread time


async def endpoint(pcm: np.ndarray, turn: dict[str, Any], silence_ms: int) -> tuple[list[SpeechEnd], float, int]:
    """Every utterance end of `pcm` pushed at once; the wall time of the model answer that ended the last one
    (0 in silence mode), and the audio the endpointer had heard when it ended (samples)."""
    p = Pipeline(build_spec(AudioSpec(), VadOptions(silence_ms=silence_ms), PipelineConfig(),
                            turn=TurnOptions(**turn) if turn else None))
    late: asyncio.Queue[list[Item]] = asyncio.Queue()
    p.on_late = late.put_nowait
    asked: list[float] = [0.0]
    heard = [0]
    answered = [0.0]
    if p.turn is not None:
        ep = p.turn.endpointer
        ask, answer = ep.ask, ep.answer

        def timed_ask(query_id: int, audio: np.ndarray) -> None:
            asked[0] = time.perf_counter()
            ask(query_id, audio)

        def timed_answer(query_id: int, probability: float | None) -> list[Item]:
            answered[0] = time.perf_counter() - asked[0]
            heard[0] = ep._history_end
            return answer(query_id, probability)

        ep.ask = timed_ask
        ep.answer = timed_answer  # type: ignore[method-assign]
    ends = [it for it in p.push(pcm.tobytes()) if isinstance(it, SpeechEnd)]
    if p.turn is not None:
        while p.turn.endpointer._waiting():
            ends += [it for it in await late.get() if isinstance(it, SpeechEnd)]
    ends += [it for it in p.flush() if isinstance(it, SpeechEnd)]  # still open at the end: counted as flush
    p.release()
    return ends, answered[0], heard[0]


async def endpointing(silence_ms: int) -> dict[str, Turns]:
    out = {name: Turns() for name in MODES}
    runner = get_runner()
    for c in clips():
        speech = load_pcm16(c.path)
        pcm = np.concatenate([speech, np.zeros(int(TAIL_S * 16000), dtype=np.int16)])
        end = last_voiced_end(speech)
        for name, turn in MODES.items():
            r = out[name]
            busy = runner.busy_s
            ends, answer_s, heard = await endpoint(pcm, turn, silence_ms)
            r.audio_s += len(pcm) / 16000
            r.turns += 1
            last = ends[-1] if ends else None
            r.cuts += sum(1 for e in ends[:-1] if e.offset < end - 16000 * 0.1)
            for e in ends:
                r.reasons[e.reason] = r.reasons.get(e.reason, 0) + 1
            if last is not None and last.reason != "flush":
                waited = (heard - last.offset) / 16 if turn else silence_ms
                r.delays_ms.append(waited + answer_s * 1000)
            r.model_s += runner.busy_s - busy
    return out


async def with_hub(silence_ms: int) -> dict[str, tuple[list[float], float]]:
    hub = HubProcess(base_config(), Path(tempfile.mkdtemp())).start()
    try:
        async def one(name: str, turn: dict[str, Any]) -> tuple[str, tuple[list[float], float]]:
            lat: list[float] = []
            refs: list[str] = []
            hyps: list[str] = []
            for c in clips():
                start: dict[str, Any] = {"language": "en", "vad": {"silence_ms": silence_ms}}
                if turn:
                    start["turn"] = turn
                t = await stream_timed(hub.ws, load_pcm16(c.path).tobytes(), start=start,
                                       trailing_silence_ms=int(TAIL_S * 1000))
                finals = [e for e, rt in zip(t.events, t.recv, strict=True)
                          if e["type"] == "transcript.final" and rt < t.stop_at]
                if finals:
                    lat.append(finals[-1]["latency_ms"])
                refs.append(c.transcript)
                hyps.append(" ".join(e["text"] for e in t.events if e["type"] == "transcript.final"))
            return name, (lat, wer(refs, hyps))

        return dict(await asyncio.gather(*(one(n, t) for n, t in MODES.items())))
    finally:
        hub.stop()


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--silence-ms", type=int, default=450)
    ap.add_argument("--hub", action="store_true", help="also stream to a real hub: final latency and WER")
    args = ap.parse_args()
    print(f"# bench_turns — {machine()}; {len(clips())} English clips from {SPEECH_ROOT}, each + {TAIL_S} s silence")
    res = await endpointing(args.silence_ms)
    print("\n| mode | end of speech -> utterance end, ms p50 / p95 | turns cut before their end | "
          "end reasons | turn model CPU per audio-s |")
    print("|---|---|---|---|---|")
    for name, r in res.items():
        cpu = r.model_s / r.audio_s if r.audio_s else 0.0
        reasons = ", ".join(f"{k} {v}" for k, v in sorted(r.reasons.items()))
        print(f"| {name} | {p50_p95(r.delays_ms)} | {r.cuts} in {r.turns} turns | {reasons} | {cpu * 100:.2f} % |")
    if args.hub:
        hub = await with_hub(args.silence_ms)
        print("\n| mode | end of speech -> final (latency_ms of each turn's last final) p50 / p95 | WER |")
        print("|---|---|---|")
        for name, (lat, w) in hub.items():
            print(f"| {name} | {p50_p95(lat)} | {w:.3f} |")


if __name__ == "__main__":
    asyncio.run(main())
