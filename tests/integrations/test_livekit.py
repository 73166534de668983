"""Issue 15 item 7: livekit-agents' `openai.STT(base_url=...)` against a real hub, through the example
in examples/livekit_stt.py (REST recognize and the Realtime stream)."""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType

from tests.support import Clip, HubProcess, wer


async def test_livekit_openai_stt_recognize_and_stream(
        hub: HubProcess, libri_clip: Clip, load_example: Callable[[str], ModuleType]) -> None:
    example = load_example("livekit_stt")
    text, finals = await example.main(hub.http + "/v1", "x", str(libri_clip.path))
    assert wer([libri_clip.transcript], [text]) < 0.2, text
    assert finals and wer([libri_clip.transcript], [" ".join(finals)]) < 0.2, finals
