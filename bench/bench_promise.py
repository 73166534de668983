"""Stable-text promise A/B on real speech, in process and deterministic (issue 23).

    .venv/bin/python -m bench.bench_promise [--set dev|varied|all] [--flip guard_opening=false] [--show]
    .venv/bin/python -m bench.bench_promise --commands [--flip fill_tail=false]

Every English clip of `../shared/data/speech` (dev) and its `varied/` set goes through the hub's endpointer
(WebRTC VAD, default options) and a StreamAdapter on tiny.en (the real scheduler, one lane), in both modes:
with 1 s of trailing silence, and push-to-talk (cut at its last voiced frame, then flushed, as `stop` does).
Partials are asked for at fixed audio ends and each is answered before the next chunk is pushed (the
interval never stretched), so a run gives the same words on a loaded machine; only the hub's timing is
left out (partials that a loaded hub skips or merges). Each clip runs as A (the code's defaults) and B
(A with the `--flip` StreamAdapter attributes), interleaved, and WER is pooled per set and mode.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Callable
from typing import Any, TypeVar

import numpy as np

from asrhub.core.audio import AudioChunk, RingBuffer, ms_to_samples
from asrhub.engine.scheduler import Scheduler
from asrhub.operators.endpoint import Endpointer, EndpointOptions
from asrhub.operators.vad_webrtc import WebRtcVad
from asrhub.providers.base import StreamOptions, StreamResult, StreamSink
from asrhub.providers.faster_whisper import FasterWhisperProvider
from asrhub.providers.streaming import StreamAdapter
from tests.support import EndpointFeed, last_voiced_end, load_pcm16, normalise, wer

CHUNK = ms_to_samples(40)
MODES = {"trailing_silence": False, "push_to_talk": True}
T = TypeVar("T")


class Asked(Scheduler):
    """The real scheduler; it keeps the future of the last partial it was given."""

    def __init__(self) -> None:
        super().__init__(1)
        self.partial: asyncio.Future[Any] | None = None

    def submit(self, fn: Callable[[], T], *, final: bool, **kw: Any) -> asyncio.Future[T] | None:
        fut = super().submit(fn, final=final, **kw)
        if not final:
            self.partial = fut
        return fut


async def stream_clip(pcm: np.ndarray, ptt: bool, attrs: dict[str, Any] | None = None, language: str = "en",
                      options: dict[str, Any] | None = None) -> list[StreamResult]:
    """`pcm` through the endpointer and a StreamAdapter as the hub runs them: push-to-talk (cut at its last
    voiced frame, then flushed) or with 1 s of trailing silence; every partial answered before the next
    chunk is pushed. `attrs`: StreamAdapter attributes set on this stream; `options`: the provider's, over
    tiny.en's (e.g. the default config's whisper_multi for `language` zh)."""
    sched = Asked()
    await sched.start()
    try:
        provider = FasterWhisperProvider(language, {"interim_nice": 0, "model": "bundled:tiny.en", **(options or {})},
                                         sched, language=language)
        await provider.load()
        audio = pcm[:last_voiced_end(pcm)] if ptt else np.concatenate([pcm, np.zeros(ms_to_samples(1000), dtype=np.int16)])
        results: list[StreamResult] = []
        errors: list[BaseException] = []
        ring = RingBuffer(len(audio))
        stream = StreamAdapter(provider, StreamOptions("s", language, True, False),
                               StreamSink(results.append, lambda e, _u: errors.append(e)), ring)
        stream.max_stretch = 1  # the interval stays interim_interval_ms whatever the machine's load
        for k, v in (attrs or {}).items():
            setattr(stream, k, v)
        endpointer = Endpointer(WebRtcVad(2), EndpointOptions(True, 150, 450, 300, 25.0))
        feed = EndpointFeed(stream, ring)

        for i in range(0, len(audio), CHUNK):
            sched.partial = None
            feed(endpointer.push(AudioChunk(audio[i:i + CHUNK], i)))
            if sched.partial is not None:  # a partial was asked for: its result first (the stream's own
                await asyncio.wait({sched.partial}, timeout=60)  # callback on it runs before this wakes)
        feed(endpointer.flush(len(audio)))
        await asyncio.wait_for(stream.drain(), 60)
        await stream.close()
        if errors:
            raise errors[0]
        return results
    finally:
        await sched.stop()


def final_text(results: list[StreamResult]) -> str:
    return " ".join(r.text for r in results if r.is_final and r.text).strip()


def promised_share(results: list[StreamResult]) -> tuple[int, int]:
    """(partials with stable text, partials)."""
    partials = [r for r in results if not r.is_final]
    return sum(1 for r in partials if r.stable_text), len(partials)


def by_group(clips: list[Any]) -> list[tuple[str, list[int], list[str]]]:
    """The clips of each speech set that has any ("dev", "varied"): its name, the clips' indices and their
    reference transcripts (the rows of a bench's WER table)."""
    out = []
    for g in ("dev", "varied"):
        idx = [i for i, c in enumerate(clips) if c.group == g]
        if idx:
            out.append((g, idx, [clips[i].transcript for i in idx]))
    return out


def _value(v: str) -> Any:
    low = v.lower()
    if low in ("true", "false"):
        return low == "true"
    try:
        return int(v)
    except ValueError:
        return float(v)


async def run(which: str, flip: dict[str, Any], show: bool) -> None:
    from bench.bench_accuracy import items
    from bench.common import machine

    clips = items(which)
    arms = {"A": {}, "B": flip}
    hyps: dict[tuple[str, str], list[str]] = {(a, m): [] for a in arms for m in MODES}
    promised = {a: [0, 0] for a in arms}
    t0 = time.monotonic()
    for c in clips:
        pcm = load_pcm16(c.path)
        for m, ptt in MODES.items():
            for a, attrs in arms.items():
                res = await stream_clip(pcm, ptt, attrs)
                hyps[(a, m)].append(final_text(res))
                p, n = promised_share(res)
                promised[a][0] += p
                promised[a][1] += n
        if show:
            print(f"\n{c.path.name}\n  ref {c.transcript}")
            for m in MODES:
                a_text, b_text = hyps[("A", m)][-1], hyps[("B", m)][-1]
                print(f"  {m:17} A {a_text}")
                if b_text != a_text:
                    print(f"  {m:17} B {b_text}")
    print(f"\nmachine: {machine()}; {len(clips)} clips; B = A with {flip}; {time.monotonic() - t0:.0f} s")
    print("| clips | n | " + " | ".join(f"{m} A / B" for m in MODES) + " |")
    print("|---|---|" + "---|" * len(MODES))
    for g, idx, refs in by_group(clips):
        cells = [" / ".join(f"{100 * wer(refs, [hyps[(a, m)][i] for i in idx]):.1f} %" for a in arms) for m in MODES]
        print(f"| {g} | {len(idx)} | " + " | ".join(cells) + " |")
    print("partials with stable text: " + ", ".join(f"{a} {p}/{n}" for a, (p, n) in promised.items()))
    same = {a: sum(1 for x, y in zip(hyps[(a, "trailing_silence")], hyps[(a, "push_to_talk")], strict=True)
                   if normalise(x) == normalise(y)) for a in arms}
    print("push-to-talk finals that read as the trailing-silence ones: "
          + ", ".join(f"{a} {n}/{len(clips)}" for a, n in same.items()))


def _background(pcm: np.ndarray, n: int) -> np.ndarray:
    """The recording's quietest `n` samples (its room tone)."""
    power = np.concatenate([[0.0], np.cumsum(pcm.astype(np.float64) ** 2)])
    starts = np.arange(0, len(pcm) - n + 1, 160)
    at = int(starts[np.argmin(power[starts + n] - power[starts])])
    return pcm[at:at + n]


async def commands(flip: dict[str, Any]) -> None:
    """The English short commands of tests/test_short_commands.py (0.5-1.1 s) in both modes and both arms,
    each after 0.5 s of digital silence (as the test) and after 0.5 s of its recording's own background."""
    from bench.common import machine
    from tests.test_short_commands import COMMANDS, DATA

    arms = {"A": {}, "B": flip}
    errs: dict[tuple[str, str], list[float]] = {}
    for c in [c for c in COMMANDS if c.language == "en"]:
        room = _background(load_pcm16(DATA / c.file), ms_to_samples(500))
        for lead_name, lead in (("silence", np.zeros(ms_to_samples(500), dtype=np.int16)), ("room", room)):
            pcm = np.concatenate([lead, c.pcm()])
            for m, ptt in MODES.items():
                for a, attrs in arms.items():
                    text = final_text(await stream_clip(pcm, ptt, attrs))
                    errs.setdefault((a, m), []).append(wer([c.words], [text]))
                    print(f"{c.words:18} {lead_name:8} {m:17} {a} {text}", flush=True)
    print(f"\nmachine: {machine()}; B = A with {flip}; mean WER per command")
    for m in MODES:
        print(f"{m}: " + ", ".join(f"{a} {100 * np.mean(errs[(a, m)]):.1f} %" for a in arms))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--set", default="all", choices=["dev", "varied", "all"])
    ap.add_argument("--flip", nargs="*", default=["guard_opening=false"], help="StreamAdapter attr=value for B")
    ap.add_argument("--show", action="store_true", help="print every final (B only where it differs)")
    ap.add_argument("--commands", action="store_true", help="the short commands of tests/test_short_commands.py")
    a = ap.parse_args()
    flip = {k: _value(v) for k, v in (f.split("=", 1) for f in a.flip)}
    asyncio.run(commands(flip) if a.commands else run(a.set, flip, a.show))


if __name__ == "__main__":
    main()
