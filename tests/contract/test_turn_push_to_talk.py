"""Issue 19 item 5: semantic turn mode with push-to-talk, and in Mandarin, through a real hub (WebSocket).

- `flush` and `stop` end the open utterance at once in semantic mode: the sentence is cut mid-word (the turn
  model says "not finished" and would wait up to max_silence_ms for more audio), no audio follows the command,
  and the utterance still ends, `reason: flush`, with its final;
- a Mandarin sentence followed by silence ends at the turn model's answer (`reason: turn`, well before
  max_silence_ms), its final carries `end_of_turn` and the sentence's characters."""

from __future__ import annotations

import jiwer
import numpy as np
import pytest

from tests.contract.clients import PCM16
from tests.contract.conftest import MakeClient
from tests.support import clip, load_pcm16

SEMANTIC = {"mode": "semantic", "eagerness": "medium", "max_silence_ms": 3000}


def _cut_sentence() -> bytes:
    """LJ001-0005 cut at 55 % ("... in the middle of the fif"): Smart Turn's P < 0.2 (tests/test_turn_speech.py)."""
    pcm = load_pcm16(clip("en_ljspeech_LJ001-0005").path)
    return pcm[:int(len(pcm) * 0.55)].tobytes()


@pytest.mark.parametrize("command", ["flush", "stop"])
async def test_flush_and_stop_end_an_unfinished_turn_at_once(make_client: MakeClient, command: str) -> None:
    c = await make_client("websocket")
    assert await c.start({"audio": PCM16, "language": "en", "turn": SEMANTIC})
    await c.stream(_cut_sentence(), chunk_bytes=3200, realtime=4.0)
    await c.wait_for(lambda e: e.get("type") == "transcript.partial")  # the utterance is open
    await (c.flush() if command == "flush" else c.stop())
    ended = await c.wait_for(lambda e: e.get("type") == "speech.ended", 60)
    final = await c.wait_for(lambda e: e.get("type") == "transcript.final", 60)
    assert ended["reason"] == "flush", ended                 # not turn, not max_silence: no audio came after
    assert ended["offset_ms"] >= 4000 and final["end_ms"] == ended["offset_ms"], (ended, final)
    assert "middle" in final["text"].lower(), final
    assert final["end_of_turn"] is True, final               # the client ended the turn
    if command == "stop":
        assert (await c.wait_ended(60))[-1]["type"] == "session.ended"
    else:
        await c.stop()
        await c.wait_ended(60)


def _chars(text: str) -> str:
    return "".join(ch for ch in text if ch.isalnum())


async def test_a_mandarin_turn_ends_at_the_models_answer(make_client: MakeClient) -> None:
    zh = clip("zh_aishell_BAC009S0724W0121")  # 广州市房地产中介协会分析 (4.3 s, no pause within)
    pcm = np.concatenate([load_pcm16(zh.path), np.zeros(16000 * 4, dtype=np.int16)]).tobytes()
    c = await make_client("websocket")
    assert await c.start({"audio": PCM16, "language": "zh", "turn": SEMANTIC})
    await c.stream(pcm, chunk_bytes=3200, realtime=4.0)
    final = await c.wait_for(lambda e: e.get("type") == "transcript.final", 120)
    await c.stop()
    events = await c.wait_ended(120)
    ended = [e for e in events if e["type"] == "speech.ended"]
    assert [e["reason"] for e in ended] == ["turn"], ended   # the model's answer, not 3 s of silence
    assert ended[0]["turn_probability"] >= 0.9, ended
    assert final["end_of_turn"] is True and final["end_ms"] == ended[0]["offset_ms"], final
    assert jiwer.cer(_chars(zh.transcript), _chars(final["text"])) <= 0.3, final["text"]
