"""Routing by detected language when the first utterance is too short to identify (found by a stranger's first
hour, docs: PROTOCOL §1 "No language"). In semantic turn mode the turn model ends a 0.33 s blip at the start of
FunASR's demo clip (P 0.98); that blip is all the language ID hears (an unsure `en`, p 0.52), and the Mandarin
sentence after it began while that answer was awaited, so it was never identified itself: the whole sentence
was decoded by tiny.en as English ("What's your favorite video? ..."). Real hub, default config, real speech."""

from __future__ import annotations

import numpy as np

from asrhub.providers.localise import has_han
from tests.support import SPEECH, HubProcess, clip, final_text, finals, load_pcm16, ws_stream


async def test_the_sentence_after_an_unsure_blip_is_identified_itself(hub: HubProcess) -> None:
    zh = clip("zh_funasr_asr_example")
    pcm = load_pcm16(SPEECH / zh.file).tobytes() + np.zeros(16000, dtype=np.int16).tobytes()
    events = await ws_stream(hub.ws, pcm, start={"turn": {"mode": "semantic"}}, chunk_bytes=3200, realtime=1.0,
                             timeout=300)
    assert events[0]["type"] == "session.started" and events[0]["language"] == "auto", events[0]
    ends = [e for e in events if e["type"] == "speech.ended"]
    assert ends and ends[0]["offset_ms"] < 1000, ends  # the blip this test is about: a turn of its own
    switched = [e for e in events if e["type"] == "provider.switched"]
    assert [(e["from"], e["to"]) for e in switched] == [("faster_whisper", "whisper_multi")], switched
    spoken = [f for f in finals(events) if f["text"]]
    assert spoken and all(f["language"] == "zh" and f["provider"] == "whisper_multi" for f in spoken), spoken
    text = final_text(events)
    assert has_han(text) and "欢迎大家" in text, text
