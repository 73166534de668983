"""Issue 15 item 7: pipecat's `OpenAISTTService` against a real hub, through examples/pipecat_stt.py.

pipecat-ai pins protobuf<7 while the hub's generated gRPC code needs protobuf 7, so scripts/install.sh
installs it with --no-deps (plus the few dependencies its OpenAI STT imports); see docs/INTEGRATIONS.md."""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType

from tests.support import Clip, HubProcess, wer


async def test_pipecat_openai_stt_service(
        hub: HubProcess, libri_clip: Clip, load_example: Callable[[str], ModuleType]) -> None:
    example = load_example("pipecat_stt")
    wav = libri_clip.path.read_bytes()
    frame = await example.transcribe(hub.http + "/v1", "x", wav)
    assert wer([libri_clip.transcript], [frame.text]) < 0.2, frame.text
    logprobs = frame.result.logprobs  # the hub answered include[]=logprobs with real token scores
    assert logprobs and all(lp.logprob <= 0 for lp in logprobs)
    frame = await example.transcribe(hub.http + "/v1", "x", wav, model="whisper-1")
    assert frame.result.segments and all(s.avg_logprob < 0 for s in frame.result.segments)
