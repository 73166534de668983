"""Routing by detected language (DESIGN §5): what the language ID costs and how often it routes right.

    .venv/bin/python -m bench.bench_detect [--windows 1.0,1.5,2.0,3.0] [--skip-sessions] [--realtime 2.0]

1. Language ID alone, in this process, with the default config's multilingual provider (bundled:base,
   int8, one thread): every English and Mandarin clip of the speech set, the window starting at the
   clip's first speech (core.routing.first_speech), as an upload is identified. Per window length: how
   many are identified right, the lowest probability of a right answer, and CPU ms per call (process CPU
   time over the calls; the model's own single thread). Then the sessions' policy (core.routing: 2 s,
   and 4 s when the first answer is unsure).
2. Through a hub with the default config: each clip streamed over WebSocket with no language (+1 s of
   silence); right when every final comes from the route of the clip's language (en -> faster_whisper,
   zh -> whisper_multi) labelled with it. Also the latency of the first final, against `language` named.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import SPEECH_ROOT, machine
from tests.support import HubProcess, base_config, finals, load_pcm16, manifest, ws_stream

ROUTE = {"en": "faster_whisper", "zh": "whisper_multi"}


def clips() -> list[Any]:
    return [c for c in manifest(SPEECH_ROOT) if c.language in ROUTE and c.transcript]


async def language_id(windows: list[float]) -> None:
    from asrhub.core.audio import HUB_RATE, int16_to_float
    from asrhub.core.config import load_config
    from asrhub.engine.routing import CONFIDENT, DETECT_MAX_S, DETECT_S, first_speech
    from asrhub.engine.scheduler import Scheduler
    from asrhub.providers.registry import ProviderSet

    cfg = load_config()
    sched = Scheduler(2, partial_workers=1)  # two final lanes: each model replica runs one thread, as in the hub
    await sched.start()
    providers = ProviderSet(cfg.providers, sched)
    await providers.load([providers.providers["whisper_multi"]])
    detector: Any = providers.detector()
    assert detector is not None, "the default config's whisper_multi (bundled:base) must load"
    ct2 = detector._ct2
    audios = [(c, load_pcm16(c.path)) for c in clips()]
    starts = [first_speech(a) or 0 for _, a in audios]
    for _ in range(3):  # warm up (the first encodes of a shape are slower)
        ct2.detect_language(int16_to_float(audios[0][1][: 2 * HUB_RATE]))
    print(f"\nlanguage ID over {len(audios)} clips ({sum(c.language == 'en' for c, _ in audios)} en, "
          f"{sum(c.language == 'zh' for c, _ in audios)} zh), {machine()}")
    print("| window | right | lowest p of a right answer | wrong (clip: answer p) | CPU ms per call |")
    print("|---|---|---|---|---|")
    for w in windows:
        right, lowest, wrong = 0, 1.0, []
        cpu0 = time.process_time()
        for (c, a), s in zip(audios, starts, strict=True):
            lang, p = ct2.detect_language(int16_to_float(a[s:s + int(w * HUB_RATE)]))[0]
            if lang == c.language:
                right += 1
                lowest = min(lowest, p)
            else:
                wrong.append(f"{c.file}: {lang} {p:.2f}")
        cpu_ms = (time.process_time() - cpu0) * 1000 / len(audios)
        print(f"| {w:.1f} s | {right}/{len(audios)} | {lowest:.2f} | {'; '.join(wrong) or '-'} | {cpu_ms:.0f} |")
    # the session policy: DETECT_S, and DETECT_MAX_S when that answer is unsure and the speech goes on
    right, lowest, wrong, calls = 0, 1.0, [], 0
    cpu0 = time.process_time()
    for (c, a), s in zip(audios, starts, strict=True):
        lang, p = ct2.detect_language(int16_to_float(a[s:s + int(DETECT_S * HUB_RATE)]))[0]
        calls += 1
        if p < CONFIDENT and len(a) - s > DETECT_S * HUB_RATE:
            lang, p = ct2.detect_language(int16_to_float(a[s:s + int(DETECT_MAX_S * HUB_RATE)]))[0]
            calls += 1
        if lang == c.language:
            right += 1
            lowest = min(lowest, p)
        else:
            wrong.append(f"{c.file}: {lang} {p:.2f}")
    cpu_ms = (time.process_time() - cpu0) * 1000 / len(audios)
    print(f"| sessions: {DETECT_S:.0f} s, {DETECT_MAX_S:.0f} s when p < {CONFIDENT} ({calls - len(audios)} clips) "
          f"| {right}/{len(audios)} | {lowest:.2f} | {'; '.join(wrong) or '-'} | {cpu_ms:.0f} per utterance |")
    await providers.close()
    await sched.stop()


async def sessions(realtime: float) -> None:
    hub = HubProcess(base_config(), Path(tempfile.mkdtemp())).start(timeout=300)
    silence = np.zeros(16000, dtype=np.int16).tobytes()
    rows: list[tuple[str, str, bool, str]] = []
    first_final: dict[tuple[str, bool], list[float]] = {}
    try:
        for c in clips():
            pcm = load_pcm16(c.path).tobytes() + silence
            for named in (False, True):
                start = {"language": c.language} if named else None
                events = await ws_stream(hub.ws, pcm, start=start, chunk_bytes=3200, realtime=realtime, timeout=300)
                fs = [f for f in finals(events) if f["text"]]
                if fs:  # audio end of the first final -> its arrival, from the final's own latency figure
                    first_final.setdefault((c.language, named), []).append(fs[0]["latency_ms"])
                if named:
                    continue
                ok = bool(fs) and all(f["provider"] == ROUTE[c.language] and f["language"] == c.language for f in fs)
                got = ",".join(sorted({f"{f['provider']}/{f['language']}/{f.get('language_probability', 0):.2f}"
                                       for f in fs}))
                rows.append((c.file, c.language, ok, got))
    finally:
        hub.stop()
    right = sum(ok for _, _, ok, _ in rows)
    print(f"\nsessions with no language over WebSocket at {realtime}x real time: {right}/{len(rows)} routed right")
    for f, lang, ok, got in rows:
        if not ok:
            print(f"  wrong: {f} ({lang}): {got}")
    print("| language | first final latency, no language (median ms) | language named (median ms) |")
    print("|---|---|---|")
    for lang in ROUTE:
        auto, named = first_final.get((lang, False), []), first_final.get((lang, True), [])
        print(f"| {lang} | {statistics.median(auto):.0f} | {statistics.median(named):.0f} |" if auto and named
              else f"| {lang} | - | - |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--windows", default="1.0,1.5,2.0,3.0", help="language ID window lengths, seconds")
    ap.add_argument("--skip-sessions", action="store_true", help="only the language ID, no hub")
    ap.add_argument("--realtime", type=float, default=2.0, help="streaming pace of the session runs")
    a = ap.parse_args()
    asyncio.run(language_id([float(w) for w in a.windows.split(",")]))
    if not a.skip_sessions:
        asyncio.run(sessions(a.realtime))


if __name__ == "__main__":
    main()
