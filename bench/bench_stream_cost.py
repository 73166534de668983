"""What one stream costs when every decode it asks for is served (issue 23 item 4): CPU seconds per audio
second, the decodes and the audio they encoded, partials and finals apart.

    .venv/bin/python -m bench.bench_stream_cost [--set dev] [--gap-s 1] [--ab REV...]

In process, no hub and no clock: the English clips one after another, each followed by `--gap-s` of silence,
go in 40 ms chunks through the hub's WebRTC endpointer (default VAD settings) into the stream adapter of a
faster-whisper tiny.en provider with the default options; after each chunk the bench waits until every
decode the chunk caused is done (a machine infinitely fast against the audio: no partial is superseded,
refused or stretched, so the work is the same on a quiet or a loaded machine). CPU is this process's (all threads),
`encoded` the audio seconds handed to decodes (before padding). WER of the finals against the clips'
transcripts shows the levers keep the accuracy. Under load the scheduler drops work this bench never
drops: bench_concurrency measures that side.

`--ab REV...` runs the same in a subprocess per git revision (its src/ exported, bench_concurrency's
revision_src), one after another, so a lever's commit can be set against its parent in one command.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any, TypeVar

import numpy as np

from bench.bench_concurrency import revision_src
from bench.common import SPEECH_ROOT, machine
from tests.support import EndpointFeed, english, load_pcm16, wer

T = TypeVar("T")
CHUNK_MS = 40


async def run(gap_s: float, limit: int, levers: list[str], workers: int = 0) -> dict[str, Any]:
    from asrhub.core.audio import HUB_RATE, AudioChunk, RingBuffer
    from asrhub.engine.scheduler import Scheduler
    from asrhub.operators.endpoint import Endpointer, EndpointOptions
    from asrhub.operators.vad_webrtc import WebRtcVad
    from asrhub.providers.base import StreamOptions, StreamResult, StreamSink
    from asrhub.providers.faster_whisper import FasterWhisperProvider
    from asrhub.providers.streaming import StreamAdapter

    if hasattr(StreamAdapter, "max_stretch"):
        # the stretch under load reads wall time, which here is not the audio's: every decode is served
        StreamAdapter.max_stretch = 1
    for lever in levers:  # NAME=VALUE: a StreamAdapter class setting (tail_window_s=6, skip_paused=0)
        name, _, value = lever.partition("=")
        setattr(StreamAdapter, name, type(getattr(StreamAdapter, name))(float(value)))

    pending: list[asyncio.Future[Any]] = []
    encoded = {"partial": 0.0, "final": 0.0}
    decodes = {"partial": 0, "final": 0}

    class Counting(Scheduler):
        def submit(self, fn: Callable[[], T], *, final: bool, **kw: Any) -> asyncio.Future[T] | None:
            fut = super().submit(fn, final=final, **kw)
            batch = kw.get("batch")
            if fut is not None:
                pending.append(fut)
                kind = "final" if final else "partial"
                decodes[kind] += 1
                if batch is not None:
                    encoded[kind] += len(batch.item[0]) / HUB_RATE
            return fut

    sched = Counting(workers)  # final lanes (0: one per core); one lane: its model runs on every core
    await sched.start()
    provider = FasterWhisperProvider("faster_whisper", {"model": "bundled:tiny.en"}, sched, language="en")
    await provider.load()
    clips = [c for c in english(SPEECH_ROOT) if c.seconds < 15][:limit]
    gap = np.zeros(int(gap_s * HUB_RATE), dtype=np.int16)
    audio = np.concatenate([x for c in clips for x in (load_pcm16(c.path), gap)])
    finals: list[StreamResult] = []
    partials = 0

    def on_result(r: StreamResult) -> None:
        nonlocal partials
        if r.is_final:
            finals.append(r)
        else:
            partials += 1

    def on_error(e: BaseException, uid: str | None) -> None:
        raise RuntimeError(f"{uid}: {e}")

    ring = RingBuffer(len(audio) + HUB_RATE)
    stream = provider.open_stream(StreamOptions("cost", "en", True, False), StreamSink(on_result, on_error), ring)
    ep = Endpointer(WebRtcVad(2), EndpointOptions(True, 150, 450, 300, 25.0))
    step = HUB_RATE * CHUNK_MS // 1000
    cpu0, t0 = time.process_time(), time.perf_counter()

    feed = EndpointFeed(stream, ring)

    async def settle() -> None:
        while pending:  # a final's re-decode is queued when its first decode is done
            batch = list(pending)
            pending.clear()
            await asyncio.gather(*batch, return_exceptions=True)
            await asyncio.sleep(0)  # the finals' tasks and callbacks run
            await asyncio.sleep(0)

    for i in range(0, len(audio), step):
        chunk = AudioChunk(audio[i:i + step], i)
        feed(ep.push(chunk))  # the chunk, then the markers its frames gave (as a session feeds them)
        await settle()
    feed(ep.flush(len(audio)))
    await settle()
    await stream.drain()
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - t0
    await stream.close()
    await sched.stop()
    hyp = " ".join(f.text for f in sorted(finals, key=lambda f: f.start))
    ref = " ".join(c.transcript for c in clips)
    return {"audio_s": len(audio) / HUB_RATE, "cpu_s": cpu, "wall_s": wall, "partials": partials,
            "finals": len(finals), "decodes": decodes, "encoded": encoded, "wer": wer([ref], [hyp]),
            "speculated": getattr(stream, "speculation_hits", 0), "redecodes": getattr(stream, "redecodes", 0)}


def report(name: str, r: dict[str, Any]) -> str:
    a = r["audio_s"]
    return (f"| {name} | {a:.0f} | {r['cpu_s'] / a:.3f} | {r['decodes']['partial']} / {r['decodes']['final']} | "
            f"{r['encoded']['partial'] / a:.2f} / {r['encoded']['final'] / a:.2f} | {r['partials']} | "
            f"{r['finals']} ({r['speculated']} speculated, {r['redecodes']} re-decoded) | {100 * r['wer']:.1f} % | "
            f"{os.getloadavg()[0]:.1f} |")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--gap-s", type=float, default=1.0, help="silence after each clip")
    ap.add_argument("--clips", type=int, default=100, help="at most this many clips")
    ap.add_argument("--ab", nargs="*", default=[], metavar="REV", help="also each git revision's src/")
    ap.add_argument("--set", nargs="*", default=[], metavar="NAME=VALUE",
                    help="StreamAdapter settings for this run (levers: tail_window_s=6, skip_paused=0)")
    ap.add_argument("--workers", type=int, default=0, help="scheduler.workers (0: one per core, one CTranslate2 "
                    "thread each; 1: one final lane whose decodes use every core)")
    ap.add_argument("--one", default=None, help=argparse.SUPPRESS)  # (a revision's run: print its row only)
    a = ap.parse_args()
    if a.one is not None:
        print(report(a.one, asyncio.run(run(a.gap_s, a.clips, a.set, a.workers))), flush=True)
        return
    print(f"machine: {machine()}; English clips < 15 s, {a.gap_s:g} s of silence after each, {CHUNK_MS} ms "
          "chunks, every decode served before the next chunk")
    print("| code | audio s | CPU-s per audio-s | decodes partial / final | encoded audio-s per audio-s "
          "partial / final | partials shown | finals | WER of the finals | load average |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name in ["tree", *a.ab]:
        env = {**os.environ, **(revision_src(name) if name != "tree" else {})}
        label = " ".join([name, *a.set, *([f"workers={a.workers}"] if a.workers else [])])
        subprocess.run([sys.executable, "-m", "bench.bench_stream_cost", "--gap-s", str(a.gap_s), "--clips",
                        str(a.clips), "--workers", str(a.workers), "--one", label, "--set", *a.set], env=env, check=True)


if __name__ == "__main__":
    main()
