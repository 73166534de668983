"""The hub answers a resume with whole milliseconds (`audio_from_ms`, rounded down) of the audio it has, and
takes audio in whole messages: a message boundary within that millisecond is where its audio really ends.
asrhub.client sends again from there, not from the millisecond: the fraction of a millisecond before it
would be on the timeline twice (and a session that is stopping refuses that audio with an error)."""

from __future__ import annotations

from asrhub.client.held import HeldAudio
from asrhub.core.commands import AudioSpec

PCM16 = AudioSpec(encoding="pcm_s16le", sample_rate=16000, channels=1)
MESSAGE = 1603  # samples: 100.1875 ms, so message boundaries fall inside milliseconds


def ramp(start_sample: int, n: int) -> bytes:
    return b"".join(((start_sample + i) % 32768).to_bytes(2, "little") for i in range(n))


def held_of(messages: int) -> HeldAudio:
    held = HeldAudio(PCM16, replay_audio_s=30)
    for k in range(messages):
        held.add(ramp(k * MESSAGE, MESSAGE))
    return held


def test_all_of_it_arrived_nothing_is_sent_again() -> None:
    held = held_of(10)  # 16030 samples = 1001.875 ms; the hub says 1001
    assert held.since(16030 * 1000 // 16000) == (b"", 0)


def test_sent_again_from_the_message_the_hub_lacks() -> None:
    held = held_of(10)  # the last message was lost: the hub has 14427 samples = 901.6875 ms, says 901
    data, gap = held.since(9 * MESSAGE * 1000 // 16000)
    assert gap == 0 and data == ramp(9 * MESSAGE, MESSAGE)  # that message, not 11 samples more before it


def test_a_position_inside_a_message_is_cut_at_the_sample() -> None:
    held = held_of(10)  # a takeover's audio_from_ms (a final's end) inside a message: from that sample on
    data, _ = held.since(150)
    assert data == ramp(2400, 10 * MESSAGE - 2400)
