"""Issue 22 item 3: livekit-agents' `deepgram.STT(base_url=...)` against a real hub, through the example in
examples/livekit_deepgram_stt.py (pre-recorded POST /v1/listen and the live GET /v1/listen socket)."""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType

from tests.support import Clip, HubProcess, wer


async def test_livekit_deepgram_stt_recognize_and_stream(
        hub: HubProcess, libri_clip: Clip, load_example: Callable[[str], ModuleType]) -> None:
    example = load_example("livekit_deepgram_stt")
    text, finals, interims = await example.main(hub.http, "x", str(libri_clip.path))
    assert wer([libri_clip.transcript], [text]) < 0.2, text
    assert finals and wer([libri_clip.transcript], [" ".join(finals)]) < 0.2, finals
    assert interims > 0
