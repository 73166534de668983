"""Issue 15 item 7: livekit-agents' `openai.STT(base_url=...)` against a real hub, through the example
in examples/livekit_stt.py (REST recognize and the Realtime stream)."""

from __future__ import annotations

import importlib.util

from tests.support import REPO, HubProcess, clip, wer

CLIP = clip("en_libri_1221-135766")  # 4.8 s, 16-bit PCM WAV


def _example() -> object:
    spec = importlib.util.spec_from_file_location("livekit_stt", REPO / "examples" / "livekit_stt.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


async def test_livekit_openai_stt_recognize_and_stream(hub: HubProcess) -> None:
    example = _example()
    text, finals = await example.main(hub.http + "/v1", "x", str(CLIP.path))  # type: ignore[attr-defined]
    assert wer([CLIP.transcript], [text]) < 0.2, text
    assert finals and wer([CLIP.transcript], [" ".join(finals)]) < 0.2, finals
