"""Issue 22: Deepgram's `multichannel=true` on /v1/listen: each channel of interleaved raw audio is its own
hub session and its own transcript, `channel_index` [i, channels] on every live message and one
`results.channels[]` entry per channel on the pre-recorded route. Driven by the official `deepgram-sdk` on a
real hub, with a different real speaker on each channel."""

from __future__ import annotations

import json

import httpx
import numpy as np
import pytest
import websockets
from deepgram.listen.v1.types import (
    ListenV1Finalize,
    ListenV1Metadata,
    ListenV1Results,
    ListenV1SpeechStarted,
)

from tests.contract.test_deepgram import CLIPS, client, feed, messages, pcm16
from tests.support import HubProcess, wer

STEREO = {"model": "nova-3", "encoding": "linear16", "sample_rate": 16000, "channels": 2, "multichannel": "true",
          "language": "en"}


def stereo() -> bytes:
    """CLIPS[0] on the left channel, CLIPS[1] on the right, interleaved 16-bit samples."""
    left, right = (np.frombuffer(pcm16(c), dtype="<i2") for c in CLIPS)
    n = max(len(left), len(right)) + 16000  # and 1 s of silence after the longer one
    both = np.zeros((n, 2), dtype="<i2")
    both[:len(left), 0] = left
    both[:len(right), 1] = right
    return both.tobytes()


def said(msgs: list[object], index: int) -> str:
    return " ".join(m.channel.alternatives[0].transcript for m in msgs
                    if isinstance(m, ListenV1Results) and m.is_final and m.channel_index == [index, 2]).strip()


async def sessions_started(hub: HubProcess) -> float:
    """The hub's count of sessions started over the Deepgram socket (its /metrics)."""
    async with httpx.AsyncClient() as http:
        text = (await http.get(f"{hub.http}/metrics")).text
    line = next((x for x in text.splitlines() if x.startswith('asrhub_sessions_started_total{transport="deepgram"}')),
                None)
    return float(line.rsplit(" ", 1)[1]) if line else 0.0


async def test_each_channel_is_its_own_transcript(hub: HubProcess) -> None:
    audio = stereo()
    before = await sessions_started(hub)
    async with client(hub).listen.v1.connect(**STEREO, vad_events="true",  # type: ignore[arg-type]
                                             interim_results="true") as conn:
        await feed(conn, audio, chunk=6402)  # frames split mid-sample: the channels must not slip
        await conn.send_close_stream()
        msgs = await messages(conn, ListenV1Metadata)
    assert wer([CLIPS[0].transcript], [said(msgs, 0)]) <= 0.25, said(msgs, 0)
    assert wer([CLIPS[1].transcript], [said(msgs, 1)]) <= 0.25, said(msgs, 1)
    results = [m for m in msgs if isinstance(m, ListenV1Results)]
    assert {tuple(m.channel_index) for m in results} == {(0, 2), (1, 2)}
    started = {tuple(m.channel) for m in msgs if isinstance(m, ListenV1SpeechStarted)}
    assert started == {(0, 2), (1, 2)}
    meta = msgs[-1]
    assert meta.channels == 2 and meta.duration == pytest.approx(len(audio) / 64000, abs=0.1)
    assert sum(isinstance(m, ListenV1Metadata) for m in msgs) == 1
    assert await sessions_started(hub) - before == 2, "each channel is a hub session of its own"


async def test_finalize_naming_a_channel_flushes_that_channel_only(hub: HubProcess) -> None:
    async with client(hub).listen.v1.connect(**STEREO, endpointing="false") as conn:  # type: ignore[arg-type]
        await feed(conn, stereo())
        await conn.send_finalize(ListenV1Finalize(type="Finalize", channel=1))  # type: ignore[call-arg]
        first = await messages(conn, ListenV1Results)
        while not first[-1].is_final:
            first += await messages(conn, ListenV1Results)
        flushed = first[-1]
        assert flushed.channel_index == [1, 2] and flushed.from_finalize is True
        assert wer([CLIPS[1].transcript], [flushed.channel.alternatives[0].transcript]) <= 0.25
        await conn._send({"type": "Finalize", "channel": 2})  # no such channel: a typed error, the socket lives
        await conn.send_close_stream()
        rest = await messages(conn, ListenV1Metadata)
    errors = [m for m in rest if getattr(m, "type", "") == "Error"]
    assert errors and errors[0].variant == "invalid_command" and "channel 2" in errors[0].description
    left = [m for m in rest if isinstance(m, ListenV1Results) and m.is_final and m.channel_index == [0, 2]]
    assert left and not any(m.from_finalize for m in left), "CloseStream's finals are not from a Finalize"
    assert wer([CLIPS[0].transcript], [said(rest, 0)]) <= 0.25, said(rest, 0)


async def test_multichannel_needs_raw_audio(hub: HubProcess) -> None:
    """Containerised or compressed audio cannot be split by channel here: refused naming multichannel."""
    for query in ("multichannel=true&channels=2", "multichannel=true&channels=2&encoding=flac"):
        with pytest.raises(websockets.InvalidStatus) as e:
            async with websockets.connect(f"ws://127.0.0.1:{hub.port}/v1/listen?{query}"):
                pass
        body = json.loads(e.value.response.body or b"{}")
        assert e.value.response.status_code == 400 and body["param"] == "multichannel", body
        assert "raw" in body["err_msg"]
    # multichannel with one channel is one transcript, as Deepgram gives it
    async with client(hub).listen.v1.connect(**{**STEREO, "channels": 1}) as conn:  # type: ignore[arg-type]
        await feed(conn, pcm16(CLIPS[0]))
        await conn.send_close_stream()
        msgs = await messages(conn, ListenV1Metadata)
    assert {tuple(m.channel_index) for m in msgs if isinstance(m, ListenV1Results)} == {(0, 1)}


async def test_prerecorded_multichannel_answers_a_channel_each(hub: HubProcess) -> None:
    async with httpx.AsyncClient(timeout=120) as http:
        r = await http.post(f"{hub.http}/v1/listen", params={k: v for k, v in STEREO.items() if k != "language"},
                            content=stereo(), headers={"Content-Type": "audio/l16"})
    assert r.status_code == 200, r.text
    body = r.json()
    channels = body["results"]["channels"]
    assert len(channels) == 2 and body["metadata"]["channels"] == 2
    for ch, c in zip(channels, CLIPS, strict=True):
        assert wer([c.transcript], [ch["alternatives"][0]["transcript"]]) <= 0.25, ch["alternatives"][0]
    async with httpx.AsyncClient(timeout=120) as http:  # a partial frame: refused as one channel's would be
        bad = await http.post(f"{hub.http}/v1/listen", params={k: v for k, v in STEREO.items() if k != "language"},
                              content=stereo()[:-1], headers={"Content-Type": "audio/l16"})
    assert bad.status_code == 400 and bad.json()["err_code"] == "INVALID_AUDIO" and "4-byte" in bad.json()["err_msg"]
