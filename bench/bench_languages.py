"""Languages and the bundled models: Mandarin CER and English WER, streaming (WebSocket, the DEFAULT config,
routed by `language`) and offline (whole file), plus each bundled model's real-time factor and memory.

    .venv/bin/python -m bench.bench_languages [--realtime 2.0] [--skip-streaming]

Mandarin is scored as DESIGN says: Simplified (OpenCC), punctuation and spaces removed, CER over all
Mandarin dev clips. English WER over the English dev clips with `provider: whisper_multi` (bundled:base).
Streaming: each clip then 1 s of silence; push-to-talk: the clip cut at its last voiced frame, `stop` at once.
RTF = decode CPU time / audio time for one offline pass over the English clips, one model loaded alone in a
fresh process (peak RSS measured there).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import jiwer
import numpy as np

from bench.common import machine
from tests.support import (
    HubProcess,
    base_config,
    english,
    final_text,
    last_voiced_end,
    load_pcm16,
    manifest,
    wer,
    ws_stream,
)


def mandarin() -> list:  # type: ignore[type-arg]
    return [c for c in manifest() if c.language == "zh" and c.transcript]


def chars(text: str) -> str:
    from asrhub.providers.localise import localise_text
    return re.sub(r"[\W_]+", "", localise_text(text, "zh"))


async def streaming(realtime: float) -> dict[str, float]:
    """Streaming (clip + 1 s of silence, the VAD closes the last utterance) and push-to-talk (the clip cut
    at its last voiced frame, `stop` right after it), both over WebSocket with the default config."""
    tmp = Path(tempfile.mkdtemp())
    hub = HubProcess(base_config(), tmp).start(timeout=300)
    silence = np.zeros(16000, dtype=np.int16).tobytes()
    runs = {"zh": (mandarin(), {"language": "zh"}), "en": (english(), {"language": "en", "provider": "whisper_multi"})}
    out: dict[str, float] = {}
    try:
        for lang, (clips, start) in runs.items():
            refs: list[str] = []
            hyps: dict[str, list[str]] = {"stream": [], "ptt": []}
            for c in clips:
                pcm = load_pcm16(c.path)
                refs.append(c.transcript)
                for mode, audio in (("stream", pcm.tobytes() + silence), ("ptt", pcm[:last_voiced_end(pcm)].tobytes())):
                    ev = await ws_stream(hub.ws, audio, start=start, chunk_bytes=3200, realtime=realtime, timeout=300)
                    hyps[mode].append(final_text(ev))
            for mode, h in hyps.items():
                if lang == "zh":
                    out[f"zh_cer_{mode}"] = float(jiwer.cer([chars(r) for r in refs], [chars(x) for x in h]))
                else:
                    out[f"en_wer_{mode}"] = wer(refs, h)
    finally:
        hub.stop()
    return out


_OFFLINE = """
import asyncio, json, resource, sys, time
from asrhub.core.config import load_config
from asrhub.engine.scheduler import Scheduler
from asrhub.engine.transcribe import transcribe_audio
from asrhub.providers.registry import ProviderSet
from tests.support import english, load_pcm16, manifest

async def main(name):
    cfg = load_config()
    sched = Scheduler(1)
    await sched.start()
    ps = ProviderSet(cfg.providers, sched)
    await ps.load(only=[ps.providers[name]])
    p = ps.providers[name]
    out = {"en": [], "zh": []}
    for lang, clips in (("en", english()), ("zh", [c for c in manifest() if c.language == "zh" and c.transcript])):
        if lang == "zh" and not p.capabilities.supports_language("zh"):
            continue
        for c in clips:
            r = await transcribe_audio(p, load_pcm16(c.path), lang, False)
            out[lang].append([c.transcript, r.text])
    st = p.stats
    out["rtf"] = st.decode_s / max(st.audio_s, 1e-9)
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(out))

asyncio.run(main(sys.argv[1]))
"""


def offline(name: str) -> dict[str, float]:
    out = subprocess.run([sys.executable, "-c", _OFFLINE, name], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[1])
    d = json.loads(out.stdout.strip().splitlines()[-1])
    res = {"rtf": d["rtf"], "peak_rss_mb": d["peak_rss_mb"],
           "en_wer": wer([r for r, _ in d["en"]], [h for _, h in d["en"]])}
    if d["zh"]:
        res["zh_cer"] = float(jiwer.cer([chars(r) for r, _ in d["zh"]], [chars(h) for _, h in d["zh"]]))
    return res


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--realtime", type=float, default=2.0, help="streaming pace (x real time)")
    ap.add_argument("--skip-streaming", action="store_true")
    args = ap.parse_args()
    print(machine())
    t0 = time.perf_counter()
    for name, model in (("faster_whisper", "bundled:tiny.en"), ("whisper_multi", "bundled:base")):
        r = offline(name)
        print(f"offline {name} ({model}, int8, 1 worker): " + ", ".join(f"{k} {v:.3f}" for k, v in r.items()))
    if not args.skip_streaming:
        s = asyncio.run(streaming(args.realtime))
        print(f"WebSocket, default config, {args.realtime}x real time: Mandarin CER streaming {s['zh_cer_stream']:.3f}, "
              f"push-to-talk {s['zh_cer_ptt']:.3f} (language zh -> whisper_multi); English WER streaming "
              f"{s['en_wer_stream']:.3f}, push-to-talk {s['en_wer_ptt']:.3f} (provider whisper_multi)")
    print(f"took {time.perf_counter() - t0:.0f} s; this process peak RSS "
          f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")


if __name__ == "__main__":
    main()
