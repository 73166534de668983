"""Partials under load (issue 11 item 4): continuous talkers, more than the partial lane can refresh, all
at real-time pace on one hub. None is refused, and every utterance longer than 1.5 s shows a partial
before its final (first partials go before refreshes and take a free final lane). The latency figures
are measured in bench/bench_concurrency.py; this test checks the behaviour, not a time."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from tests.support import HubProcess, base_config, english, load_pcm16, running, ws_stream

STREAMS = 10
SECONDS = 20.0
GAP_S = 1.0


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HubProcess]:
    yield from running(base_config(), tmp_path_factory.mktemp("partials-load"))


def talker(index: int, clips: list[np.ndarray]) -> bytes:
    """Clips back to back from a different one per talker, 1 s of silence after each, up to SECONDS."""
    order = clips[index % len(clips):] + clips[: index % len(clips)]
    gap = np.zeros(int(GAP_S * 16000), dtype=np.int16)
    parts: list[np.ndarray] = []
    total = 0
    for c in order:
        if parts and total + len(c) + len(gap) > SECONDS * 16000:
            break
        parts += [c, gap]
        total += len(c) + len(gap)
    return np.concatenate(parts).tobytes()


def test_every_long_utterance_shows_a_partial_before_its_final(hub: HubProcess) -> None:
    clips = [load_pcm16(c.path) for c in english() if c.seconds < 15]
    audio = [talker(i, clips) for i in range(STREAMS)]

    async def run() -> list[list[dict[str, Any]]]:
        return await asyncio.gather(*(ws_stream(hub.ws, a, chunk_bytes=1280, realtime=1.0, timeout=180)
                                      for a in audio))

    sessions = asyncio.run(run())
    long_utterances = 0
    for events in sessions:
        assert events[0]["type"] == "session.started", events[:2]  # none refused
        assert events[-1]["type"] == "session.ended" and events[-1]["reason"] == "stop", events[-1]
        assert not [e for e in events if e["type"] == "error"]
        partial_before: set[str] = set()
        for e in events:
            if e["type"] == "transcript.partial":
                partial_before.add(e["utterance_id"])
            elif e["type"] == "transcript.final" and e["end_ms"] - e["start_ms"] > 1500 and e["text"]:
                long_utterances += 1
                assert e["utterance_id"] in partial_before, (e, [x for x in events if x.get("utterance_id")
                                                                 == e["utterance_id"]])
    assert long_utterances >= 2 * STREAMS, long_utterances

