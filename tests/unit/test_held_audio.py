"""asrhub.client's held audio (docs/PROTOCOL.md "Held audio"): what is sent since the last final is kept,
bounded by replay_audio_s, and given back from any position, with silence for what is no longer held."""

from __future__ import annotations

from asrhub.client.held import HeldAudio
from asrhub.core.commands import AudioSpec

PCM16 = AudioSpec(encoding="pcm_s16le", sample_rate=16000, channels=1)


def ramp(start_sample: int, n: int) -> bytes:
    """n int16 samples whose values are their own positions (mod 2**15): each byte says where it was."""
    return b"".join(((start_sample + i) % 32768).to_bytes(2, "little") for i in range(n))


def test_held_since_a_final_and_resent_from_a_position() -> None:
    held = HeldAudio(PCM16, replay_audio_s=30)
    for k in range(30):  # 3 s in 100 ms messages
        held.add(ramp(k * 1600, 1600))
    held.settled(1000)  # a final ended at 1 s
    assert held.start == 16000 * 2
    data, gap = held.since(1500)
    assert gap == 0 and data == ramp(24000, 24000)  # 1.5 s to 3 s, cut at the sample
    data, gap = held.since(500)  # before what is held: silence for the half second no longer held
    assert gap == 500 and data == b"\x00\x00" * 8000 + ramp(16000, 32000)


def test_bounded_by_replay_audio_s() -> None:
    held = HeldAudio(PCM16, replay_audio_s=1)
    for k in range(50):  # 5 s, no final
        held.add(ramp(k * 1600, 1600))
    assert held.sent == 5 * 32000 and held.start == 4 * 32000
    assert sum(len(d) for _, d in held.chunks) == 32000


def test_compressed_audio_is_not_held() -> None:
    held = HeldAudio(AudioSpec(encoding="opus", sample_rate=48000, channels=1), replay_audio_s=30)
    held.add(b"\x01" * 100)
    assert not held.enabled and held.since(0) == (b"", 0)
    stereo = HeldAudio(AudioSpec(encoding="pcm_f32le", sample_rate=8000, channels=2), replay_audio_s=30)
    stereo.add(b"\x01" * 8 * 800)  # 100 ms
    assert stereo.since(50)[0] == b"\x01" * 8 * 400
