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


def test_a_final_forgets_only_whole_frames() -> None:
    """A final's end that falls inside a message cuts it at a sample frame (stereo pcm_s16le: 4 bytes), and
    what is forgotten is exactly the audio before the final's end."""
    stereo = AudioSpec(encoding="pcm_s16le", sample_rate=16000, channels=2)
    held = HeldAudio(stereo, replay_audio_s=30)
    for k in range(10):  # 1 s in 100 ms messages of 1600 frames, 4 bytes each
        held.add(bytes([k]) * 6400)
    held.settled(250)  # 4000 frames in: inside the third message
    assert held.start == 4000 * 4
    assert [len(d) for _, d in held.chunks][:2] == [800 * 4, 6400]  # the rest of the third message, the fourth
    data, gap = held.since(250)
    assert gap == 0 and data == bytes([2]) * 3200 + b"".join(bytes([k]) * 6400 for k in range(3, 10))


def test_finals_drop_the_held_audio_as_they_arrive() -> None:
    held = HeldAudio(PCM16, replay_audio_s=30)
    for k in range(20):  # 2 s
        held.add(ramp(k * 1600, 1600))
    sizes = []
    for end_ms in (400, 900, 1500, 2000):
        held.settled(end_ms)
        sizes.append(sum(len(d) for _, d in held.chunks))
    assert sizes == [(2000 - e) * 32 for e in (400, 900, 1500, 2000)]
    assert held.start == held.sent == 64000  # everything settled: nothing held, nothing to send again
    assert held.since(1000) == (b"\x00\x00" * 16000, 1000)  # only silence stands for the settled second
    held.add(ramp(32000, 1600))  # the session goes on: the next audio is held again
    assert held.since(2000) == (ramp(32000, 1600), 0)


def test_settled_beyond_what_was_sent_and_resend_from_the_future() -> None:
    held = HeldAudio(PCM16, replay_audio_s=30)
    held.add(ramp(0, 1600))  # 100 ms
    assert held.since(500) == (b"", 0)  # from after the end of what was sent: nothing
    held.settled(5000)  # a final whose end is past the audio this client sent (its clock vs the hub's)
    assert not held.chunks and held.start == held.sent == 3200


def test_g711_silence_and_no_replay_audio() -> None:
    """What stands for audio no longer held is each encoding's own silence; replay_audio_s 0 holds nothing."""
    for encoding, silence in (("pcm_mulaw", b"\xff"), ("pcm_alaw", b"\xd5"), ("pcm_f32le", b"\x00" * 4)):
        held = HeldAudio(AudioSpec(encoding=encoding, sample_rate=8000, channels=1), replay_audio_s=1)
        width = len(silence)
        held.add(b"\x07" * 8000 * 2 * width)  # 2 s: only the last second is held
        data, gap = held.since(500)
        assert gap == 500 and data == silence * 4000 + b"\x07" * 8000 * width, encoding
    none = HeldAudio(PCM16, replay_audio_s=0)
    none.add(ramp(0, 1600))
    assert not none.enabled and not none.chunks and none.since(0) == (b"", 0) and none.sent == 3200
