"""Telephony audio (issue 15 item 4): `pcm_mulaw` and `pcm_alaw` at 8 kHz, decoded in the pipeline.

Real speech (tests/data/speech) is resampled to 8 kHz by sox and companded by the test's own G.711 encoders;
streamed over WebSocket to a real hub, its WER must be within 3 points of the same clips sent as 16 kHz
PCM. Every other transport and REST `/v1/transcribe` (headerless upload with `encoding`) take it too.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.contract.clients import CLIENTS
from tests.support import SPEECH, HubProcess, base_config, final_text, manifest, running, wer, ws_stream
from tests.telephony import alaw_encode, mulaw_encode, to_rate

DATA = SPEECH  # tests/data/speech (tests/data/README.md: sources and licences)
CLIPS = ("en_libri_1089-134686-0000.flac", "en_libri_2412-153948-0000.flac", "en_ljspeech_LJ001-0001.wav")
ENCODERS = {"pcm_mulaw": mulaw_encode, "pcm_alaw": alaw_encode}


def reference(name: str) -> str:
    return next(c.transcript for c in manifest() if c.file == name)


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HubProcess]:
    yield from running(base_config(), tmp_path_factory.mktemp("g711"))


async def _ws_text(hub: HubProcess, audio: bytes, encoding: str, rate: int, bytes_per_s: int) -> str:
    events = await ws_stream(hub.ws, audio, start={"audio": {"encoding": encoding, "sample_rate": rate, "channels": 1},
                                                   "interim_results": False},
                             chunk_bytes=bytes_per_s // 10, realtime=0, timeout=180)
    assert events[-1]["type"] == "session.ended" and events[-1]["reason"] == "stop", events[-1]
    assert not [e for e in events if e["type"] == "error"], events
    started = events[0]
    assert started["audio"]["encoding"] == encoding and started["audio"]["sample_rate"] == rate, started
    return final_text(events)


async def test_g711_8k_wer_within_3_points_of_16k_pcm(hub: HubProcess) -> None:
    refs = [reference(n) for n in CLIPS]
    hyps: dict[str, list[str]] = {"pcm_s16le@16k": [], "pcm_mulaw": [], "pcm_alaw": []}
    for name in CLIPS:
        pcm16 = to_rate(DATA / name, 16000)
        hyps["pcm_s16le@16k"].append(await _ws_text(hub, pcm16.tobytes(), "pcm_s16le", 16000, 32000))
        pcm8 = to_rate(DATA / name, 8000)
        for enc, encode in ENCODERS.items():
            hyps[enc].append(await _ws_text(hub, encode(pcm8), enc, 8000, 8000))
    scores = {k: wer(refs, v) for k, v in hyps.items()}
    print("WER", {k: round(v * 100, 1) for k, v in scores.items()})
    base = scores["pcm_s16le@16k"]
    assert base < 0.25, (base, hyps)  # the baseline itself is a real transcription
    for enc in ENCODERS:
        assert scores[enc] <= base + 0.03, (enc, scores, hyps[enc])


@pytest.mark.parametrize("transport", list(CLIENTS))
@pytest.mark.parametrize("encoding", list(ENCODERS))
async def test_g711_on_every_transport(hub: HubProcess, transport: str, encoding: str) -> None:
    name = CLIPS[0]
    audio = ENCODERS[encoding](to_rate(DATA / name, 8000))
    c = CLIENTS[transport](hub)
    await c.connect()
    try:
        assert await c.start({"audio": {"encoding": encoding, "sample_rate": 8000}, "interim_results": False})
        await c.stream(audio, chunk_bytes=800, realtime=0, bytes_per_s=8000)
        await c.stop()
        events = await c.wait_ended(180)
    finally:
        await c.close()
    assert events[-1]["reason"] == "stop" and not [e for e in events if e["type"] == "error"], events
    text = " ".join(e["text"] for e in events if e["type"] == "transcript.final")
    assert wer([reference(name)], [text]) < 0.25, text
    # ~10.4 s of audio in 8000 one-byte samples per second: the timeline is counted in the source rate
    assert abs(events[-1]["stats"]["audio_ms"] - len(audio) / 8) < 50, events[-1]["stats"]


@pytest.mark.parametrize("encoding", list(ENCODERS))
async def test_g711_rest_upload(hub: HubProcess, encoding: str) -> None:
    name = CLIPS[1]
    audio = ENCODERS[encoding](to_rate(DATA / name, 8000))
    async with httpx.AsyncClient(base_url=hub.http, timeout=180) as http:
        r = await http.post("/v1/transcribe", files={"file": ("call.raw", audio, "application/octet-stream")},
                            data={"encoding": encoding, "sample_rate": "8000"})
        assert r.status_code == 200, r.text
        body = r.json()
        assert wer([reference(name)], [body["text"]]) < 0.25, body["text"]
        assert abs(body["duration_ms"] - len(audio) / 8) < 50, body["duration_ms"]
        # the same bytes without the encoding are not a file PyAV knows: typed, not a crash
        r = await http.post("/v1/transcribe", files={"file": ("call.raw", audio, "application/octet-stream")})
        assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_audio", r.text
        # an odd rate is fine when it is in range (G.711 is usually 8 kHz, not necessarily)
        odd = ENCODERS[encoding](to_rate(DATA / name, 11025))
        r = await http.post("/v1/transcribe", files={"file": ("call.raw", odd, "application/octet-stream")},
                            data={"encoding": encoding, "sample_rate": "11025"})
        assert r.status_code == 200 and wer([reference(name)], [r.json()["text"]]) < 0.25, r.text

