"""Deepgram socket against the native one: end of speech -> final, through GET /v1/listen (the official
`deepgram-sdk`, as a voice agent runs it) and through GET /v1/ws (asrhub.client), on the same real clips and
the same hub, one session at a time, the two transports interleaved per clip (rotating which goes first)
so that they share the machine's load.

Each clip is streamed as 16 kHz 16-bit PCM at real-time pace in 20 ms messages, with 2 s of silence after
it, language en (the same provider route), interim results on, the hub's default endpointing (VAD silence)
on every transport. For each final that
arrives before the client's stop: arrival - the wall time at which the audio up to the final's end had been
sent (the /v1/ws final's `end_ms`; the Deepgram `Results`' `start + duration`). The end-of-stream finals
(after CloseStream / stop) are left out: they measure the stop, not the endpoint. The Deepgram socket's
session asks word timestamps (its `Results` carry `words`), so /v1/ws is measured with the same session and
with its default one (no words): the first pair compares the transports, the second shows what words cost.

    .venv/bin/python -m bench.bench_deepgram [--clips a,b] [--rounds N] [--out file.md]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from deepgram import AsyncDeepgramClient
from deepgram.environment import DeepgramClientEnvironment
from deepgram.listen.v1.types import ListenV1Metadata, ListenV1Results

from bench.common import SPEECH_ROOT, Timed, machine, pct, send_timed, stream_timed
from tests.support import HubProcess, base_config, english, load_pcm16, wer

CHUNK_MS = 20
TRAILING_SILENCE_MS = 2000  # a final slower than this would fall after the stop and out of the figures
# "ws" opens the session the Deepgram socket opens (words on: Deepgram's Results always carry them);
# "ws-nowords" is /v1/ws's default session (no word timestamps), to show what the words cost
TRANSPORTS = ("deepgram", "ws", "ws-nowords")
LABELS = {"deepgram": "Deepgram `GET /v1/listen` (deepgram-sdk)", "ws": "native `GET /v1/ws` (asrhub.client), "
          "`word_timestamps: true`", "ws-nowords": "native `GET /v1/ws`, its default session (no word timestamps)"}


@dataclass
class Run:
    latency_ms: list[float] = field(default_factory=list)  # per final before the stop
    refs: list[str] = field(default_factory=list)
    hyps: list[str] = field(default_factory=list)


async def deepgram_timed(hub: HubProcess, pcm: bytes) -> tuple[list[tuple[float, float, str]], Timed]:
    """Stream over /v1/listen with the official SDK; (final end s, arrival, transcript) per final, and the
    send times."""
    env = DeepgramClientEnvironment(base=hub.http, production=f"ws://127.0.0.1:{hub.port}",
                                    agent=f"ws://127.0.0.1:{hub.port}", agent_rest=hub.http)
    dg = AsyncDeepgramClient(api_key="bench", environment=env)
    pcm = pcm + bytes(32 * TRAILING_SILENCE_MS)
    step = 32 * CHUNK_MS
    timed = Timed()
    finals: list[tuple[float, float, str]] = []
    async with dg.listen.v1.connect(model="nova-3", language="en", encoding="linear16", sample_rate=16000,
                                    channels=1, interim_results="true", punctuate="true") as conn:  # type: ignore[arg-type]

        async def reader() -> None:
            while True:
                msg = await conn.recv()
                now = time.perf_counter()
                if isinstance(msg, ListenV1Results) and msg.is_final:
                    finals.append((msg.start + msg.duration, now, msg.channel.alternatives[0].transcript))
                elif isinstance(msg, ListenV1Metadata):
                    return

        task = asyncio.create_task(reader())
        try:
            await send_timed(conn.send_media, pcm, step, timed)
            timed.stop_at = time.perf_counter()
            await conn.send_close_stream()
            await asyncio.wait_for(task, 300)
        finally:
            task.cancel()
    return finals, timed


async def one(hub: HubProcess, transport: str, pcm: bytes, transcript: str, out: Run) -> list[float]:
    got: list[float] = []
    if transport == "deepgram":
        finals, timed = await deepgram_timed(hub, pcm)
        for end_s, arrived, _ in finals:
            if arrived < timed.stop_at:
                got.append((arrived - timed.sent_time(round(end_s * 1000))) * 1000)
        text = " ".join(t for _, _, t in finals)
    else:
        timed = await stream_timed(hub.ws, pcm, chunk_ms=CHUNK_MS, trailing_silence_ms=TRAILING_SILENCE_MS,
                                   start={"interim_results": True, "language": "en",
                                          "word_timestamps": transport == "ws"})
        finals_ws = [(e, rt) for e, rt in zip(timed.events, timed.recv, strict=True)
                     if e["type"] == "transcript.final"]
        for e, rt in finals_ws:
            if rt < timed.stop_at:
                got.append((rt - timed.sent_time(e["end_ms"])) * 1000)
        text = " ".join(e["text"] for e, _ in finals_ws)
    out.latency_ms += got
    out.refs.append(transcript)
    out.hyps.append(text)
    return got


async def bench(hub: HubProcess, clips: list[str], rounds: int,
                transports: tuple[str, ...] = TRANSPORTS) -> tuple[dict[str, Run], list[float]]:
    """Every transport's run, and the paired differences Deepgram - ws (words on) per final, where both
    ended the same clip's utterances alike (the same number of finals before the stop)."""
    runs = {t: Run() for t in transports}
    paired: list[float] = []
    chosen = [c for c in english(SPEECH_ROOT) if not clips or any(c.file.startswith(p) for p in clips)]
    pcms = {c.file: load_pcm16(c.path).tobytes() for c in chosen}
    for r in range(rounds):
        for k, c in enumerate(chosen):
            shift = (r * len(chosen) + k) % len(transports)
            got: dict[str, list[float]] = {}
            for transport in transports[shift:] + transports[:shift]:
                got[transport] = await one(hub, transport, pcms[c.file], c.transcript, runs[transport])
                print(f"  round {r + 1} {c.file:<34} {transport:<10} finals before stop: "
                      f"{', '.join(f'{x:.0f}' for x in got[transport])} ms", file=sys.stderr)
            if len(got["deepgram"]) == len(got["ws"]):
                paired += [a - b for a, b in zip(got["deepgram"], got["ws"], strict=True)]
    return runs, paired


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--clips", default="", help="manifest file prefixes, comma-separated (default: every English clip)")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--transports", default=",".join(TRANSPORTS), help=f"some of {', '.join(TRANSPORTS)} (deepgram "
                   "and ws always)")
    p.add_argument("--out", help="write the markdown report here")
    args = p.parse_args(argv)
    transports = tuple(t for t in TRANSPORTS if t in {"deepgram", "ws", *args.transports.split(",")})
    clips = [c.strip() for c in args.clips.split(",") if c.strip()]
    with tempfile.TemporaryDirectory() as tmp:
        hub = HubProcess(base_config(), Path(tmp)).start()
        try:
            t0 = time.monotonic()
            runs, paired = asyncio.run(bench(hub, clips, args.rounds, transports))
            took = time.monotonic() - t0
        finally:
            hub.stop()
    command = ".venv/bin/python -m bench.bench_deepgram " + " ".join(argv if argv is not None else sys.argv[1:])
    n_clips = len(runs["ws"].refs) // max(1, args.rounds)
    rows = ["| transport | end of speech -> final p50 / p95 / max (ms) | finals | WER |", "|---|---|---|---|"]
    for t, label in LABELS.items():
        if t not in runs:
            continue
        lat = runs[t].latency_ms
        rows.append(f"| {label} | {pct(lat, 50):.0f} / {pct(lat, 95):.0f} / {max(lat):.0f} | {len(lat)} "
                    f"| {wer(runs[t].refs, runs[t].hyps):.3f} |")
    d50 = pct(runs["deepgram"].latency_ms, 50) - pct(runs["ws"].latency_ms, 50)
    d95 = pct(runs["deepgram"].latency_ms, 95) - pct(runs["ws"].latency_ms, 95)
    report = "\n".join([
        f"`{command.strip()}`", "",
        f"Machine: {machine()}. {n_clips} English clips x {args.rounds} round(s) per transport, 16 kHz PCM at "
        f"real-time pace in {CHUNK_MS} ms messages, {TRAILING_SILENCE_MS} ms of silence after each, language en "
        f"(the same route, tiny.en, for every session), interim results on, the hub's default endpointing; one "
        f"session at a time, transports interleaved; default "
        f"config (faster-whisper tiny.en); {took:.0f} s wall.", "",
        *rows, "",
        f"Difference (Deepgram - native with words): p50 {d50:+.0f} ms, p95 {d95:+.0f} ms; per final, paired "
        f"on the same clip and round ({len(paired)} pairs): median {pct(paired, 50):+.0f} ms, p5 / p95 "
        f"{pct(paired, 5):+.0f} / {pct(paired, 95):+.0f} ms.", ""])
    print(report)
    if args.out:
        Path(args.out).write_text(report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
