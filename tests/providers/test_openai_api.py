"""Issue 4: the `openai` provider with the real `openai` client library. A second hub (faster-whisper)
serves the OpenAI-compatible /v1/audio/transcriptions; the first hub, whose provider is `openai` with
`base_url` pointing there, transcribes English manifest speech streamed to it."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from tests.support import (
    HubProcess,
    base_config,
    client_stream,
    clip,
    final_text,
    finals,
    load_pcm16,
    running,
    wer,
)

CLIPS = ("en_libri_1089-134691", "en_jfk", "en_ljspeech_LJ001-0005")


@pytest.fixture(scope="module")
def backend(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HubProcess]:
    yield from running(base_config(), tmp_path_factory.mktemp("openai_backend"))


@pytest.fixture(scope="module")
def hub(backend: HubProcess, tmp_path_factory: pytest.TempPathFactory) -> Iterator[HubProcess]:
    providers = f"""
providers:
  default: openai
  timeout_s: 60
  instances:
    openai:
      base_url: "{backend.http}/v1"
      api_key: not-checked-by-this-backend
      model: whisper-1
"""
    yield from running(base_config(providers=providers), tmp_path_factory.mktemp("openai_front"))


def test_openai_provider_transcribes_through_an_openai_compatible_server(hub: HubProcess) -> None:
    async def run() -> list[list[dict]]:
        return list(await asyncio.gather(*(
            client_stream(hub.http, load_pcm16(clip(n).path).tobytes(), start={"language": "en", "word_timestamps": True},
                      realtime=0, chunk_bytes=6400, timeout=120) for n in CLIPS)))

    runs = asyncio.run(run())
    refs, hyps = [], []
    for name, events in zip(CLIPS, runs, strict=True):
        assert events[0]["provider"] == "openai"
        assert "error" not in [e["type"] for e in events], events
        fins = finals(events)
        assert fins and all(f["provider"] == "openai" for f in fins)
        assert all(f["words"] for f in fins), fins          # verbose_json word timestamps came through
        assert all(f["start_ms"] <= f["words"][0]["start_ms"] for f in fins)
        refs.append(clip(name).transcript)
        hyps.append(final_text(events))
    assert wer(refs, hyps) <= 0.15, list(zip(refs, hyps, strict=True))


def test_openai_provider_without_key_is_unavailable_with_reason(tmp_path) -> None:  # noqa: ANN001
    from asrhub.engine.scheduler import Scheduler
    from asrhub.providers.openai_api import OpenAIProvider

    async def run() -> tuple[str, str | None]:
        p = OpenAIProvider("o", {"base_url": "http://127.0.0.1:9/v1"}, Scheduler(1))
        import os
        saved = os.environ.pop("OPENAI_API_KEY", None)
        try:
            await p.load()
        finally:
            if saved is not None:
                os.environ["OPENAI_API_KEY"] = saved
        h = p.health()
        return h.status, h.reason

    status, reason = asyncio.run(run())
    assert status == "unavailable" and "API key" in (reason or "")
