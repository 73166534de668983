"""Mandarin through a real hub with the default config (issue 23 item 3): `language: zh` goes to the bundled
multilingual Whisper base; real Mandarin clips from tests/data.

- a song: the clip over a music bed, then 5 s of the music alone (bench/zh_classes.py, sox), streamed with
  trailing silence and push-to-talk: its words come back, and no credits ("作词作曲", "字幕由…"), no loop, and
  no reading of the previous final over the music (Whisper's habits on music after the words);
- read speech: the push-to-talk final and the trailing-silence final of the same clip agree.
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import jiwer
import numpy as np
import pytest

from asrhub.providers.localise import localise_text
from asrhub.providers.text_guard import NON_SPEECH_PATTERNS, loops, self_repeat
from bench.zh_classes import make
from tests.support import HubProcess, clip, finals, last_voiced_end, load_pcm16, ws_stream

# clips whose music tail made base write again the words before it ("广州市佛地产中间协会"), or a loop ("剪刀刀")
SONGS = ["zh_aishell_BAC009S0724W0121", "zh_aishell3_SSB10560454", "zh_aishell3_SSB03410265"]
READ = ["zh_firered_BAC009S0764W0121", "zh_funasr_asr_example", "zh_fleurs_1883"]


def chars(text: str) -> str:
    return re.sub(r"[\W_]+", "", localise_text(text, "zh"))


def cer(refs: list[str], hyps: list[str]) -> float:
    return float(jiwer.cer([chars(r) or "∅" for r in refs], [chars(h) or "∅" for h in hyps]))


def both_modes(hub: HubProcess, pcm: np.ndarray) -> dict[str, list[str]]:
    """The finals' texts with 1 s of trailing silence, and push-to-talk (cut at the last voiced frame)."""
    out = {}
    for mode, audio in (("trailing silence", np.concatenate([pcm, np.zeros(16000, dtype=np.int16)])),
                        ("push-to-talk", pcm[:last_voiced_end(pcm)])):
        events = asyncio.run(ws_stream(hub.ws, audio.tobytes(), realtime=2.0, chunk_bytes=3200,
                                       start={"language": "zh"}, timeout=300))
        out[mode] = [e["text"] for e in finals(events) if e["text"]]
    return out


@pytest.mark.parametrize("name", SONGS)
def test_a_song_gives_its_words_and_no_credits(hub: HubProcess, tmp_path: Path, name: str) -> None:
    c = clip(name)
    song = make(c.path, "song", tmp_path / "song.wav")
    assert song.speech_s < len(load_pcm16(song.path)) / 16000 - 4.9  # 5 s of music alone after the words
    for mode, texts in both_modes(hub, load_pcm16(song.path)).items():
        text = "".join(texts)
        invented = [m.group(0) for m in NON_SPEECH_PATTERNS.finditer(chars(text)) if m.group(0)]
        assert not invented, (mode, texts)
        assert not any(loops(t) or self_repeat(t) for t in texts), (mode, texts)
        # nothing read into the music ("第1个", "剪刀刀", "我以为你能够接触" came after the words), and the words
        # themselves (base misreads a character or two of these clips, a greedy decode one or two more)
        assert len(chars(text)) <= len(chars(c.transcript)) + 1, (mode, texts)
        assert cer([c.transcript], [text]) <= 0.5, (mode, texts)


def test_push_to_talk_and_trailing_silence_agree(hub: HubProcess) -> None:
    refs, silence, ptt = [], [], []
    for name in READ:
        c = clip(name)
        got = both_modes(hub, load_pcm16(c.path))
        refs.append(c.transcript)
        silence.append("".join(got["trailing silence"]))
        ptt.append("".join(got["push-to-talk"]))
    # the same words either way (a character or two may differ: a final decoded while another one waits
    # searches greedily); a lost last word or anything read into the silence is several characters
    assert cer(silence, ptt) <= 0.08, (silence, ptt)
    assert cer(refs, silence) <= 0.3 and cer(refs, ptt) <= 0.3, (silence, ptt)
