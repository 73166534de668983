"""Simulated Mandarin clip classes for issue 23 item 3: far-field meeting and song, made from read clips by sox.

    .venv/bin/python -m bench.zh_classes --out DIR [--root DIR_WITH_MANIFEST] [--language zh]

The speech set has read speech only; these classes are SIMULATED from it, reproducibly (sox in repeatable
mode `-R`, fixed effect settings, levels set by measured RMS), so a later run on real far-field or song clips
can be compared with the same bench:

- `far`: far-field meeting: reverb (a medium room), distance (low-pass at 3.4 kHz, 12 dB quieter) and room
  noise (brown + pink noise, low-passed) mixed at `FAR_SNR_DB` (10 dB) below the reverberant speech;
- `song`: the speech over a music bed (sox synth: a four-chord progression of plucked triads with a sine
  bass) at `SONG_BED_DB` (15 dB) below the speech, then `SONG_TAIL_S` (5 s) of the music alone: Whisper's
  credits hallucination ("作词作曲…", "字幕由…") on music after the words. A song clip must give its words
  and no credits.

`make` takes a clip in any language (the English tests and benches use its songs too); `music` and `noise` give
the bed or sox's noise alone (no speech: a session fed them must give no text).

Every output is 16 kHz mono 16-bit WAV; `--out` gets the files and a MANIFEST.tsv in the speech set's shape
(transcript copied; `notes` says how the clip was made, column `class`).
"""

from __future__ import annotations

import argparse
import csv
import subprocess
import tempfile
import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np

RATE = 16000
FAR_SNR_DB = 10.0
FAR_ATTENUATION_DB = 12.0
SONG_BED_DB = 15.0
SONG_TAIL_S = 5.0
CLASSES = ("read", "far", "song")
# C major - A minor - F major - G major, as semitones from A4 (sox synth's %N notation): triads one octave down
_CHORDS = ((-21, -17, -14), (-24, -21, -17), (-28, -24, -21), (-26, -22, -19))
_CHORD_S = 1.0


@dataclass(frozen=True)
class Made:
    cls: str
    path: Path
    speech_s: float  # where the words end (the song's music tail follows)


def _sox(*args: str) -> None:
    """sox in repeatable mode (a fixed seed for its noise and dither)."""
    subprocess.run(["sox", "-R", *args], check=True, capture_output=True)


F32 = ("-t", "f32", "-r", str(RATE), "-c", "1")  # sox's raw float32 16 kHz mono, before a file name


def _f32(path: Path) -> np.ndarray:
    return np.fromfile(path, dtype="<f4")


def _read(path: Path) -> np.ndarray:
    """The file as float32 mono at 16 kHz (sox converts to 16-bit, then / 32768)."""
    with tempfile.TemporaryDirectory() as d:
        out = Path(d) / "x.wav"
        _sox(str(path), "-r", str(RATE), "-c", "1", "-b", "16", str(out))
        with wave.open(str(out)) as w:
            assert w.getframerate() == RATE and w.getnchannels() == 1 and w.getsampwidth() == 2
            pcm = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
    return pcm.astype(np.float32) / 32768


def _rms(x: np.ndarray) -> float:
    """RMS over the louder half of 20 ms frames (the speech, not its pauses)."""
    n = RATE // 50
    frames = x[: len(x) // n * n].reshape(-1, n)
    e = np.sqrt(np.mean(frames.astype(np.float64) ** 2, axis=1))
    loud = np.sort(e)[len(e) // 2:]
    return float(np.sqrt(np.mean(loud ** 2))) if len(loud) else 0.0


def _write(path: Path, x: np.ndarray) -> None:
    peak = float(np.max(np.abs(x))) if len(x) else 0.0
    if peak > 0.98:
        x = x * (0.98 / peak)
    pcm = np.clip(np.rint(x.astype(np.float64) * 32768), -32768, 32767).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(pcm.tobytes())


def _far(speech: np.ndarray, work: Path, snr_db: float = FAR_SNR_DB) -> np.ndarray:
    dry = work / "dry.f32"
    speech.astype("<f4").tofile(dry)
    wet = work / "wet.f32"
    # reverberance 70 %, HF damping 60 %, room scale 80 %, 20 ms pre-delay; then the distance: highs lost, quieter
    _sox(*F32, str(dry), *F32, str(wet), "reverb", "70", "60", "80", "100", "20", "lowpass", "3400",
         "gain", f"-{FAR_ATTENUATION_DB:g}")
    room = _f32(wet)
    noise_f = work / "noise.f32"
    seconds = f"{len(room)}s"  # samples
    _sox("-n", *F32, str(noise_f), "synth", seconds, "brownnoise", "synth", seconds,
         "pinknoise", "mix", "lowpass", "2000")
    noise = _f32(noise_f)
    noise = np.pad(noise, (0, max(0, len(room) - len(noise))))[: len(room)]
    gain = _rms(room) / max(_rms(noise), 1e-9) / 10 ** (snr_db / 20)
    return np.asarray(room + gain * noise, dtype=np.float32)


def _music(seconds: float, work: Path) -> np.ndarray:
    """A music bed of `seconds`: plucked triads over a sine bass, one chord a second, looping the progression."""
    parts = []
    for i in range(int(np.ceil(seconds / _CHORD_S))):
        a, b, c = _CHORDS[i % len(_CHORDS)]
        f = work / f"chord{i}.f32"
        _sox("-n", *F32, str(f), "synth", f"{_CHORD_S}", "pluck", f"%{a}", "pluck", f"%{b}",
             "pluck", f"%{c}", "sine", f"%{a - 12}", "fade", "0.01", f"{_CHORD_S}", "0.05")
        parts.append(_f32(f))
    return np.asarray(np.concatenate(parts)[: int(seconds * RATE)], dtype=np.float32)


def music(seconds: float) -> np.ndarray:
    """The song class's music bed alone, `seconds` long (float32, 16 kHz, generated by sox: nothing downloaded)."""
    with tempfile.TemporaryDirectory() as d:
        return _music(seconds, Path(d))


NOISES = ("whitenoise", "pinknoise", "brownnoise")


def noise(seconds: float, kind: str) -> np.ndarray:
    """`seconds` of sox's `kind` of noise (one of NOISES; repeatable: sox -R), float32 at 16 kHz, full scale."""
    if kind not in NOISES:
        raise ValueError(f"unknown noise {kind!r} (one of {', '.join(NOISES)})")
    with tempfile.TemporaryDirectory() as d:
        f = Path(d) / "noise.f32"
        _sox("-n", *F32, str(f), "synth", f"{int(seconds * RATE)}s", kind)
        return _f32(f)


def _song(speech: np.ndarray, work: Path) -> np.ndarray:
    total = len(speech) / RATE + SONG_TAIL_S
    bed = _music(total, work)
    bed = bed * (_rms(speech) / max(_rms(bed), 1e-9) / 10 ** (SONG_BED_DB / 20))
    out = bed.copy()
    out[: len(speech)] += speech
    return np.asarray(out, dtype=np.float32)


def make(src: Path, cls: str, dst: Path, far_snr_db: float = FAR_SNR_DB) -> Made:
    """Write the `cls` version of the clip `src` to `dst` (read: the clip itself at 16 kHz mono)."""
    speech = _read(src)
    with tempfile.TemporaryDirectory() as d:
        work = Path(d)
        if cls == "read":
            out = speech
        elif cls == "far":
            out = _far(speech, work, far_snr_db)
        elif cls == "song":
            out = _song(speech, work)
        else:
            raise ValueError(f"unknown clip class {cls!r} (one of {', '.join(CLASSES)})")
    _write(dst, out)
    return Made(cls, dst, len(speech) / RATE)


def make_set(root: Path, out: Path, language: str = "zh", classes: tuple[str, ...] = CLASSES,
             far_snr_db: float = FAR_SNR_DB) -> list[dict[str, str]]:
    """Every clip of `language` with a transcript in `root`/MANIFEST.tsv, in every class, into `out`, with a
    MANIFEST.tsv; returns its rows. Files already made are kept (the generator is deterministic)."""
    out.mkdir(parents=True, exist_ok=True)
    with open(root / "MANIFEST.tsv", newline="", encoding="utf-8") as f:
        rows = [r for r in csv.DictReader(f, delimiter="\t") if r["language"] == language and r["transcript"]]
    made: list[dict[str, str]] = []
    for r in rows:
        stem = Path(r["file"]).stem
        for cls in classes:
            dst = out / f"{stem}.{cls}.wav"
            if not dst.exists():
                make(root / r["file"], cls, dst, far_snr_db)
            speech_s = float(r["seconds"])
            with wave.open(str(dst)) as w:
                seconds = w.getnframes() / w.getframerate()
            made.append({**r, "file": dst.name, "seconds": f"{seconds:.3f}", "sample_rate": str(RATE), "channels": "1",
                         "class": cls, "speech_s": f"{speech_s:.3f}",
                         "notes": f"{cls} made from {r['file']} by bench/zh_classes.py" if cls != "read" else r["notes"]})
    with open(out / "MANIFEST.tsv", "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=list(made[0]), delimiter="\t")
        w.writeheader()
        w.writerows(made)
    return made


def main() -> None:
    from bench.common import SPEECH_ROOT

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--root", type=Path, default=SPEECH_ROOT, help="a folder with MANIFEST.tsv and its clips")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--language", default="zh")
    ap.add_argument("--far-snr", type=float, default=FAR_SNR_DB, help="far-field: speech to room noise (dB)")
    a = ap.parse_args()
    rows = make_set(a.root, a.out, a.language, far_snr_db=a.far_snr)
    print(f"{len(rows)} clips in {a.out} ({', '.join(CLASSES)})")


if __name__ == "__main__":
    main()
