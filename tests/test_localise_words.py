"""Traditional Chinese words join to the text they come with (found by a stranger's first hour: `asrhub
transcribe zh_aishell3_SSB02410161.wav --language zh-TW --format json` gave text 娛樂反斗相 but the word 鬥:
each word was converted alone, and OpenCC turns 斗 alone into 鬥 where it keeps 反斗). Real hub, real speech,
the upload route and a streaming session."""

from __future__ import annotations

import httpx

from tests.support import SPEECH, HubProcess, clip, finals, load_pcm16, ws_stream

CLIP = "zh_aishell3_SSB02410161"  # 娱乐反斗星


def _joined(words: list[dict]) -> str:
    return "".join(w["word"] for w in words).replace(" ", "")


async def test_traditional_words_join_to_the_text(hub: HubProcess) -> None:
    c = clip(CLIP)
    async with httpx.AsyncClient(base_url=hub.http, timeout=120) as http:
        r = await http.post("/v1/transcribe", files={"file": ("a.wav", c.path.read_bytes())},
                            data={"language": "zh-TW", "word_timestamps": "true"})
    body = r.json()
    assert r.status_code == 200 and "斗" in body["text"], body
    assert _joined(body["words"]) == body["text"].replace(" ", ""), body
    events = await ws_stream(hub.ws, load_pcm16(SPEECH / c.file).tobytes() + bytes(32000),
                             start={"language": "zh-TW", "word_timestamps": True}, chunk_bytes=3200, realtime=0)
    fs = [f for f in finals(events) if f["text"]]
    assert fs and all(_joined(f["words"]) == f["text"].replace(" ", "") for f in fs), fs
