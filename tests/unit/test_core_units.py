"""Unit tests of the spine's small parts: ring buffer, channel, endpointer, scheduler, LocalAgreement."""

from __future__ import annotations

import asyncio
import threading

import numpy as np
import pytest

from asrhub.core.audio import AudioChunk, RingBuffer
from asrhub.core.channel import EventChannel
from asrhub.core.commands import AudioSpec, VadOptions, parse_command
from asrhub.core.config import PipelineConfig
from asrhub.core.errors import HubError
from asrhub.core.events import SpeechStarted, TranscriptPartial
from asrhub.engine.scheduler import Scheduler, Superseded
from asrhub.operators.base import SpeechEnd, SpeechStart
from asrhub.operators.endpoint import Endpointer, EndpointOptions
from asrhub.operators.pipeline import Pipeline, build_spec
from asrhub.operators.resample import Resampler
from asrhub.providers.streaming import agreed_prefix


def test_ring_buffer_reads_by_absolute_offset_and_trims() -> None:
    rb = RingBuffer(100)
    for i in range(10):
        rb.append(np.arange(i * 30, i * 30 + 30, dtype=np.int16))
    assert rb.end == 300
    assert rb.start >= 200 - 30
    assert list(rb.read(250, 255)) == [250, 251, 252, 253, 254]
    rb.trim(270)
    assert rb.start == 270 and list(rb.read(0, 272)) == [270, 271]


def test_channel_gapless_seq_coalesces_undelivered_partials_and_replays() -> None:
    async def run() -> None:
        ch = EventChannel("s", 64)
        ch.emit(SpeechStarted(session_id="", offset_ms=0))
        for i in range(5):
            ch.emit(TranscriptPartial(session_id="", utterance_id="u1", text=f"t{i}", stable_text="", start_ms=0,
                                      end_ms=i))
        assert ch.last_seq == 2  # four partials coalesced into one, seq stays gapless
        got = []
        agen = ch.subscribe(0)
        got.append(await agen.__anext__())
        got.append(await agen.__anext__())
        assert [e.seq for e in got] == [1, 2] and got[1].text == "t4"
        ch.emit(TranscriptPartial(session_id="", utterance_id="u1", text="t5", stable_text="", start_ms=0, end_ms=5))
        assert ch.last_seq == 3  # delivered partials are not replaced
        assert [e.seq for e in ch.replay_from(1)] == [2, 3]
        await agen.aclose()

    asyncio.run(run())


def test_command_parser_rejects_unknown_fields_and_types() -> None:
    assert parse_command('{"type":"stop"}').type == "stop"
    for bad in ['{"type":"start","x":1}', '{"type":"nope"}', "[]", "{", '{"type":"start","audio":{"channels":"two"}}']:
        with pytest.raises(HubError) as e:
            parse_command(bad)
        assert e.value.code.value == "invalid_command"


class _Energy:
    frame_samples = 480

    def is_speech(self, frame: np.ndarray) -> bool:
        return bool(np.abs(frame).mean() > 1000)

    def reset(self) -> None:
        pass


def test_endpointer_hysteresis_pre_roll_and_flush() -> None:
    ep = Endpointer(_Energy(), EndpointOptions(True, 90, 300, 200, 25))
    silence = np.zeros(16000, dtype=np.int16)
    speech = np.full(16000, 5000, dtype=np.int16)
    items = ep.push(AudioChunk(silence, 0)) + ep.push(AudioChunk(speech, 16000)) + ep.push(AudioChunk(silence, 32000))
    starts = [i for i in items if isinstance(i, SpeechStart)]
    ends = [i for i in items if isinstance(i, SpeechEnd)]
    assert len(starts) == 1 and len(ends) == 1
    assert abs(starts[0].offset - 16000) < 480 and starts[0].audio_start == starts[0].offset - 3200
    assert abs(ends[0].offset - 32000) < 480
    # flush mid-speech ends the utterance now
    items = ep.push(AudioChunk(speech, 48000))
    assert any(isinstance(i, SpeechStart) for i in items)
    ended = ep.flush(64000)
    assert len(ended) == 1 and isinstance(ended[0], SpeechEnd) and ended[0].forced


def test_endpointer_cuts_long_utterances() -> None:
    ep = Endpointer(_Energy(), EndpointOptions(True, 90, 300, 0, 2.0))
    speech = np.full(16000 * 5, 5000, dtype=np.int16)
    items = ep.push(AudioChunk(speech, 0))
    ends = [i for i in items if isinstance(i, SpeechEnd)]
    assert len(ends) >= 2 and all(e.forced for e in ends)


def test_resampler_is_continuous_across_chunks() -> None:
    t = np.arange(44100 * 2) / 44100
    x = np.sin(2 * np.pi * 440 * t).astype(np.float32)
    whole = Resampler(44100).process(x, last=True)
    r = Resampler(44100)
    parts = [r.process(x[i:i + 441]) for i in range(0, len(x), 441)] + [r.process(np.zeros(0, np.float32), last=True)]
    joined = np.concatenate(parts)
    assert abs(len(joined) - 32000) <= 2
    n = min(len(joined), len(whole))
    assert np.max(np.abs(joined[:n] - whole[:n])) < 1e-3


def test_pipeline_pcm_any_rate_and_channels() -> None:
    spec = build_spec(AudioSpec(encoding="pcm_s16le", sample_rate=48000, channels=2), VadOptions(), PipelineConfig())
    p = Pipeline(spec)
    data = (np.zeros((4800, 2), dtype="<i2")).tobytes()
    p.push(data)
    assert p.offset in range(1300, 1601)  # soxr holds back a few ms until the next chunk
    with pytest.raises(HubError) as e:
        p.push(b"\x00\x01\x02")
    assert e.value.code.value == "invalid_audio"


def test_local_agreement_prefix() -> None:
    assert agreed_prefix("And so my fellow".split(), "and so, my friends".split()) == 3
    assert agreed_prefix([], ["a"]) == 0


def test_scheduler_lanes_superseded_partials_and_refusal_under_load() -> None:
    async def run() -> None:
        s = Scheduler(workers=1, partial_workers=1)
        await s.start()
        order: list[str] = []
        running = threading.Semaphore(0)
        release = threading.Event()

        def block(name: str) -> str:
            running.release()
            release.wait(10)
            order.append(name)
            return name

        slow_partial = s.submit(lambda: block("P0"), final=False, key="z")  # (a queued final would refuse it)
        slow_final = s.submit(lambda: block("F0"), final=True)
        for _ in range(2):  # both lanes are busy now
            assert await asyncio.to_thread(running.acquire, True, 10)
        assert s.running_finals == 1 and s.running_partials == 1
        p1 = s.submit(lambda: order.append("p1") or "p1", final=False, key="a")
        p2 = s.submit(lambda: order.append("p2") or "p2", final=False, key="a")  # supersedes p1 in place
        f = s.submit(lambda: order.append("f") or "f", final=True)
        assert s.finals_busy() and s.overloaded()
        assert s.submit(lambda: "p3", final=False, key="b") is None  # finals queued: refused
        overdue = s.submit(lambda: order.append("p4") or "p4", final=False, key="c", overdue=True)
        assert overdue is not None  # an utterance without partials for a while still gets one
        assert slow_final and slow_partial and p1 and p2 and f
        release.set()
        assert await asyncio.gather(slow_final, slow_partial, f, p2, overdue) == ["F0", "P0", "f", "p2", "p4"]
        assert order.index("p4") > order.index("p2")  # behind the older partial
        with pytest.raises(Superseded):
            await p1
        assert "p1" not in order
        assert order.index("f") > order.index("F0") and order.index("p2") > order.index("P0")
        await s.stop()

    asyncio.run(run())


def test_scheduler_batches_finals_together_and_partials_in_small_batches() -> None:
    from asrhub.engine.scheduler import Batch

    async def run() -> None:
        s = Scheduler(workers=1, max_batch=8, max_partial_batch=2, partial_workers=1)
        await s.start()
        calls: list[list[str]] = []

        def run_batch(items: list[str]) -> list[str]:
            calls.append(items)
            return [i.upper() for i in items]

        running = threading.Semaphore(0)
        release = threading.Event()

        def block() -> str:
            running.release()
            release.wait(10)
            return "block"

        first_partial = s.submit(block, final=False, key="z")
        first = s.submit(block, final=True)
        for _ in range(2):  # both lanes are held
            assert await asyncio.to_thread(running.acquire, True, 10)
        partials = [s.submit(lambda i=i: f"P{i}", final=False, key=f"s{i}", batch=Batch("k", run_batch, f"p{i}"))
                    for i in range(5)]  # a job that finds no mate runs alone, as its own fn
        finals = [s.submit(lambda: "x", final=True, batch=Batch("k", run_batch, f"f{i}")) for i in range(4)]
        assert first and first_partial and all(partials) and all(finals)
        release.set()
        results = await asyncio.gather(first, first_partial, *partials, *finals)  # type: ignore[arg-type]
        assert results[2:] == ["P0", "P1", "P2", "P3", "P4", "F0", "F1", "F2", "F3"]
        assert ["f0", "f1", "f2", "f3"] in calls
        assert [c for c in calls if c[0].startswith("p")] == [["p0", "p1"], ["p2", "p3"]]
        await s.stop()

    asyncio.run(run())


def test_allocator_settings_apply_on_glibc() -> None:
    from asrhub.core.memory import tune_malloc

    assert tune_malloc() is True  # Debian (glibc), as the hub's machines and CI


def test_the_hub_keeps_numpy_blas_single_threaded() -> None:
    """OpenBLAS's worker threads spin while they wait; the hub runs numpy math on one thread (serve calls
    single_threaded_blas before numpy is imported)."""
    import os
    import subprocess
    import sys

    probe = "import numpy, os; print(len(os.listdir('/proc/self/task')))"
    env = {k: v for k, v in os.environ.items() if k not in ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "OMP_NUM_THREADS")}

    def threads(setup: str) -> int:
        out = subprocess.run([sys.executable, "-c", setup + probe], env=env, capture_output=True, text=True, check=True)
        return int(out.stdout.strip())

    assert threads("from asrhub.core.memory import single_threaded_blas; assert single_threaded_blas(); ") == 1
    if (os.cpu_count() or 1) > 1:
        assert threads("") > 1  # without it, OpenBLAS starts its own threads
