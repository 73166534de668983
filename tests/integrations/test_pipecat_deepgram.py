"""Issue 22 item 3: pipecat's `DeepgramSTTService(base_url=...)` against a real hub on real speech, through
examples/pipecat_deepgram_stt.py: a real pipecat pipeline streams a recording over the hub's Deepgram socket
(GET /v1/listen); interim and final transcription frames come back, and the Finalize the service sends when
pipecat's VAD says the user stopped is answered with a `from_finalize` final.

pipecat-ai is installed with --no-deps (scripts/install.sh, docs/INTEGRATIONS.md); its Deepgram service
needs `deepgram-sdk`, which the test extra holds."""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType

from tests.contract.test_deepgram import pcm16
from tests.support import Clip, HubProcess, clip, wer


async def test_pipecat_deepgram_stt_service(
        hub: HubProcess, libri_clip: Clip, load_example: Callable[[str], ModuleType]) -> None:
    example = load_example("pipecat_deepgram_stt")
    heard = await example.transcribe(hub.http, "x", pcm16(libri_clip))
    text = " ".join(f.text for f in heard.finals)
    assert wer([libri_clip.transcript], [text]) < 0.2, text
    assert heard.interims > 0, "no interim transcription frames (pipecat asks interim_results=true)"
    last = heard.finals[-1].result
    assert last.from_finalize and last.is_final, "the Finalize after the user stopped was not answered"
    assert last.metadata.request_id and last.channel_index == [0, 1]


async def test_pipecat_deepgram_stt_service_two_sentences(
        hub: HubProcess, load_example: Callable[[str], ModuleType]) -> None:
    """A longer recording with pauses: several finals, each ended by the hub's endpointing or the Finalize."""
    jfk = clip("en_jfk")
    example = load_example("pipecat_deepgram_stt")
    heard = await example.transcribe(hub.http, "x", pcm16(jfk))  # 44.1 kHz stereo -> 16 kHz mono
    text = " ".join(f.text for f in heard.finals)
    assert len(heard.finals) >= 2, [f.text for f in heard.finals]
    assert wer([jfk.transcript], [text]) < 0.2, text
