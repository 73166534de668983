"""Mandarin by clip class (issue 23 item 3): CER of read speech, far-field meeting and song, with trailing
silence and push-to-talk, through a hub with the default config (`language: zh` -> whisper_multi, bundled:base).

    .venv/bin/python -m bench.bench_mandarin [--talkers 1] [--realtime 2] [--multi 'beam_size: 5' ...]
        [--vad 'silence_ms: 450' ...] [--classes read far song] [--label NAME] [--show]
    .venv/bin/python -m bench.bench_mandarin --offline [--multi ...]   # the provider alone, whole clips

Clips: every Mandarin clip with a transcript in the speech set (../shared/data/speech when present, else
tests/data/speech), and their far-field and song versions made by bench/zh_classes.py (SIMULATED from the
read clips; `--real CLASS=DIR` adds real clips of a class from a folder with a MANIFEST.tsv).
Modes: `stream` = the clip then 1 s of silence (the VAD ends the utterance); `ptt` = the clip cut at its last
voiced frame (the hub's VAD) and `stop` at once. `--talkers N`: N sessions at once (a pool over all the
clips and modes), each at `--realtime` (default 2x for one talker, 1x for more).
Scored as DESIGN says: Simplified (OpenCC), punctuation and spaces removed, CER pooled per class. `credits`:
song finals with a known non-speech phrase (字幕…, 作词/作曲, 谢谢观看, …) that the reference does not have,
or a loop; `music read as words`: song finals more than one character longer than their reference. `agree`: CER of the push-to-talk final against the trailing-silence final of the same clip.
`--multi` lines go into the whisper_multi provider block, `--vad` lines into pipeline.vad.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jiwer
import numpy as np

from bench.common import SPEECH_ROOT, machine
from bench.zh_classes import CLASSES, FAR_SNR_DB, make_set
from tests.support import (
    HubProcess,
    base_config,
    final_text,
    last_voiced_end,
    load_pcm16,
    manifest,
    paced,
)

MODES = ("stream", "ptt")
HUNG = "\x00"  # the hypothesis of a session that never ended: scored as no text, and shown apart


def chars(text: str) -> str:
    from asrhub.providers.localise import localise_text
    return re.sub(r"[\W_]+", "", localise_text(text, "zh"))


def credits(hyp: str, ref: str) -> bool:
    """A known non-speech phrase (credits, thanks for watching, …) the reference does not say, or a loop."""
    from asrhub.providers.text_guard import NON_SPEECH_PATTERNS, loops
    h, r = chars(hyp), chars(ref)
    return any(m.group(0) not in r for m in NON_SPEECH_PATTERNS.finditer(h) if m.group(0)) or loops(hyp)


@dataclass(frozen=True)
class Item:
    cls: str
    name: str
    path: Path
    ref: str


def items(classes: list[str], real: list[str], far_snr: float = FAR_SNR_DB) -> list[Item]:
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "asrhub" / "bench" / "zh_classes"
    if far_snr != FAR_SNR_DB:
        cache = cache.with_name(f"zh_classes_snr{far_snr:g}")
    rows = make_set(SPEECH_ROOT, cache, "zh", tuple(c for c in classes if c in CLASSES), far_snr_db=far_snr)
    out = [Item(r["class"], r["file"], cache / r["file"], r["transcript"]) for r in rows]
    for spec in real:
        cls, folder = spec.split("=", 1)
        out += [Item(cls, c.file, c.path, c.transcript) for c in manifest(Path(folder)) if c.language == "zh"
                and c.transcript]
    return out


def config(multi: list[str], vad: list[str]) -> str:
    """The default config with `multi` ("key: value" lines) set in the whisper_multi block, `vad` in
    pipeline.vad (a key already there is replaced)."""
    import yaml

    cfg = yaml.safe_load(base_config())
    for line in multi:
        cfg["providers"]["instances"]["whisper_multi"].update(yaml.safe_load(line))
    for line in vad:
        cfg["pipeline"]["vad"].update(yaml.safe_load(line))
    return str(yaml.safe_dump(cfg, allow_unicode=True, sort_keys=False))


REFUSED: list[int] = [0]  # starts refused with too_many_sessions (the hub's lag gate on a loaded machine)


async def read_into(ws: Any, events: list[dict[str, Any]]) -> None:
    async for msg in ws:
        events.append(json.loads(msg))


async def admitted_stream(url: str, audio: bytes, realtime: float) -> list[dict[str, Any]]:
    """ws_stream, the start asked again every 2 s while the hub refuses it with `too_many_sessions` (its lag
    gate: results trail the audio on a machine shared with other jobs). A refused start leaves the socket
    open for another start (PROTOCOL), so a client that ignores the refusal waits forever: the first version
    of this bench did, and counted those sessions as 'never ended'."""
    import websockets

    start = {"type": "start", "language": "zh", "audio": {"encoding": "pcm_s16le", "sample_rate": 16000,
                                                          "channels": 1}}
    for _ in range(60):
        async with websockets.connect(url, max_size=None) as ws:
            await ws.send(json.dumps(start))
            first = json.loads(await asyncio.wait_for(ws.recv(), 30))
            if first.get("type") == "error" and first.get("code") == "too_many_sessions":
                REFUSED[0] += 1
                await asyncio.sleep(2)
                continue
            events = [first]

            rtask = asyncio.create_task(read_into(ws, events))
            async for piece in paced(audio, 3200, realtime=realtime, bytes_per_s=32000):
                await ws.send(piece)
            await ws.send(json.dumps({"type": "stop"}))
            await asyncio.wait_for(rtask, 120)
            return events
    raise TimeoutError("the hub refused the start for two minutes")


async def run_hub(its: list[Item], talkers: int, realtime: float, cfg: str) -> dict[tuple[str, str], str]:
    tmp = Path(tempfile.mkdtemp())
    hub = HubProcess(cfg, tmp).start(timeout=300)
    silence = np.zeros(16000, dtype=np.int16).tobytes()
    jobs: asyncio.Queue[tuple[Item, str]] = asyncio.Queue()
    for it in its:
        for mode in MODES:
            jobs.put_nowait((it, mode))
    hyps: dict[tuple[str, str], str] = {}

    async def worker() -> None:
        while not jobs.empty():
            it, mode = jobs.get_nowait()
            pcm = load_pcm16(it.path)
            audio = pcm.tobytes() + silence if mode == "stream" else pcm[:last_voiced_end(pcm)].tobytes()
            try:
                ev = await admitted_stream(hub.ws, audio, realtime)
            except TimeoutError:  # scored as no text, and counted
                print(f"session did not end 120 s after stop: {it.name} {mode}", flush=True)
                hyps[(it.name, mode)] = HUNG
                continue
            hyps[(it.name, mode)] = final_text(ev)

    try:
        await asyncio.gather(*(worker() for _ in range(talkers)))
    finally:
        hub.stop()
    return hyps


async def run_offline(its: list[Item], multi: list[str]) -> dict[tuple[str, str], str]:
    """The whisper_multi provider alone (its short-window decode and final guard), each whole clip once."""
    import yaml

    from asrhub.engine.scheduler import Scheduler
    from asrhub.engine.transcribe import transcribe_audio
    from asrhub.providers.faster_whisper import FasterWhisperProvider

    opts = dict(yaml.safe_load(config(multi, []))["providers"]["instances"]["whisper_multi"])
    opts.pop("type", None)
    opts.pop("language", None)
    opts["interim_nice"] = 0
    sched = Scheduler(1)
    await sched.start()
    p = FasterWhisperProvider("whisper_multi", opts, sched, language="zh")
    await p.load()
    hyps: dict[tuple[str, str], str] = {}
    for it in its:
        r = await transcribe_audio(p, load_pcm16(it.path), "zh", False)
        hyps[(it.name, "offline")] = r.text
    return hyps


def report(its: list[Item], hyps: dict[tuple[str, str], str], modes: tuple[str, ...], label: str, show: bool) -> None:
    classes = list(dict.fromkeys(it.cls for it in its))
    print(f"\n| {label} | " + " | ".join(f"{c} {m}" for c in classes for m in modes)
          + " | song credits | song music read as words | agree |")
    print("|---" * (1 + len(classes) * len(modes) + 3) + "|")
    hung = {k for k, v in hyps.items() if v == HUNG}
    cells, ended = [], []
    for c in classes:
        group = [it for it in its if it.cls == c]
        for m in modes:
            cer = jiwer.cer([chars(it.ref) for it in group], [chars(hyps[(it.name, m)]) or "∅" for it in group])
            cells.append(f"{100 * cer:.1f} %")
            done = [it for it in group if (it.name, m) not in hung]
            cer = jiwer.cer([chars(it.ref) for it in done], [chars(hyps[(it.name, m)]) or "∅" for it in done])
            ended.append(f"{100 * cer:.1f} % ({len(group) - len(done)} hung)")
    songs = [it for it in its if it.cls == "song"]
    bad = sum(credits(hyps[(it.name, m)], it.ref) for it in songs for m in modes)
    # text after the words: more than one character beyond the reference's length (the music read as words)
    read_in = sum(len(chars(hyps[(it.name, m)])) > len(chars(it.ref)) + 1 for it in songs for m in modes)
    if len(modes) == 2:
        pairs = [(chars(hyps[(it.name, "stream")]), chars(hyps[(it.name, "ptt")])) for it in its
                 if (it.name, "stream") not in hung and (it.name, "ptt") not in hung]
        pairs = [(a, b) for a, b in pairs if a or b]
        agree = f"{100 * jiwer.cer([a or '∅' for a, _ in pairs], [b or '∅' for _, b in pairs]):.1f} %"
    else:
        agree = "–"
    n = len(songs) * len(modes)
    print("| CER | " + " | ".join(cells) + f" | {bad}/{n} | {read_in}/{n} | {agree} |")
    if hung:
        print("| CER, sessions that ended | " + " | ".join(ended) + " | | | |")
    if show:
        for it in its:
            print(f"  {it.cls:5} {it.name:40} ref {chars(it.ref)}")
            for m in modes:
                h = hyps[(it.name, m)]
                print(f"        {m:7} {'(the session did not end)' if h == HUNG else h}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--talkers", type=int, default=1)
    ap.add_argument("--realtime", type=float, default=None, help="audio pace (default: 2x for 1 talker, else 1x)")
    ap.add_argument("--multi", action="append", default=[], help="a YAML line for the whisper_multi block")
    ap.add_argument("--vad", action="append", default=[], help="a YAML line for pipeline.vad")
    ap.add_argument("--classes", nargs="+", default=list(CLASSES))
    ap.add_argument("--real", action="append", default=[], help="CLASS=DIR: real clips of a class (MANIFEST.tsv)")
    ap.add_argument("--offline", action="store_true", help="the provider alone, each whole clip once")
    ap.add_argument("--far-snr", type=float, default=FAR_SNR_DB, help="far-field clips' SNR (dB)")
    ap.add_argument("--label", default="")
    ap.add_argument("--show", action="store_true", help="print every hypothesis")
    a = ap.parse_args()
    its = items(a.classes, a.real, a.far_snr)
    realtime = a.realtime or (2.0 if a.talkers == 1 else 1.0)
    load0 = os.getloadavg()
    t0 = time.perf_counter()
    if a.offline:
        hyps = asyncio.run(run_offline(its, a.multi))
        modes: tuple[str, ...] = ("offline",)
    else:
        hyps = asyncio.run(run_hub(its, a.talkers, realtime, config(a.multi, a.vad)))
        modes = MODES
    load1 = os.getloadavg()
    what = "offline (provider alone)" if a.offline else f"{a.talkers} talker(s) at {realtime:g}x"
    print(f"# bench_mandarin — {machine()}; {what}; multi {a.multi or '-'}; vad {a.vad or '-'}; "
          f"{len(its)} clips; load average {load0[0]:.1f} -> {load1[0]:.1f}; {time.perf_counter() - t0:.0f} s; "
          f"starts refused at capacity and asked again: {REFUSED[0]}")
    report(its, hyps, modes, a.label or "config", a.show)


if __name__ == "__main__":
    main()
