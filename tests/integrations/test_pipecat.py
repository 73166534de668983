"""Issue 15 item 7: pipecat's `OpenAISTTService` against a real hub, through examples/pipecat_stt.py.

pipecat-ai pins protobuf<7 while the hub's generated gRPC code needs protobuf 7, so scripts/install.sh
installs it with --no-deps (plus the few dependencies its OpenAI STT imports); see docs/INTEGRATIONS.md."""

from __future__ import annotations

import importlib.util

from tests.support import REPO, HubProcess, clip, wer

CLIP = clip("en_libri_1221-135766")  # 4.8 s, 16-bit PCM WAV


def _example() -> object:
    spec = importlib.util.spec_from_file_location("pipecat_stt", REPO / "examples" / "pipecat_stt.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


async def test_pipecat_openai_stt_service(hub: HubProcess) -> None:
    example = _example()
    wav = CLIP.path.read_bytes()
    frame = await example.transcribe(hub.http + "/v1", "x", wav)  # type: ignore[attr-defined]
    assert wer([CLIP.transcript], [frame.text]) < 0.2, frame.text
    logprobs = frame.result.logprobs  # the hub answered include[]=logprobs with real token scores
    assert logprobs and all(lp.logprob <= 0 for lp in logprobs)
    frame = await example.transcribe(hub.http + "/v1", "x", wav, model="whisper-1")  # type: ignore[attr-defined]
    assert frame.result.segments and all(s.avg_logprob < 0 for s in frame.result.segments)
