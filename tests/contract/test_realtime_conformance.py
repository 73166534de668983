"""The Realtime socket in the contract suite, where its semantics allow (issue 15 item 2).

The Realtime API has no session ids, seqs or resume, so the conformance tests that check those do not apply.
What does: the same audio gives the same utterances and text as on /v1/ws (speech edges -> speech_started /
speech_stopped, finals -> completed), and bad input gets the same error code as on every other wire."""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any

import numpy as np
import pytest
import soxr
import websockets

from tests.contract.clients import CLIENTS
from tests.contract.test_conformance import PCM16, stream_file
from tests.support import HubProcess, clip, load_pcm16, normalise

JFK = clip("en_jfk")


async def realtime_run(hub: HubProcess, pcm24: bytes, expected: int) -> list[dict[str, Any]]:
    """The events of one server_vad session, until `expected` items (or more, if it found more) are
    completed: a final may come before the next utterance's speech_started, so "every started item is
    completed" alone can be true early."""
    url = hub.http.replace("http", "ws", 1) + "/v1/realtime?intent=transcription"
    events: list[dict[str, Any]] = []
    async with websockets.connect(url, additional_headers={"Authorization": "Bearer x"}) as ws:
        events.append(json.loads(await ws.recv()))
        await ws.send(json.dumps({"type": "session.update", "session": {"type": "transcription", "audio": {
            "input": {"format": {"type": "audio/pcm", "rate": 24000}, "turn_detection": {"type": "server_vad"}}}}}))
        events.append(json.loads(await ws.recv()))
        step = 24000 * 2 // 25  # 40 ms
        for i in range(0, len(pcm24), step):
            await ws.send(json.dumps({"type": "input_audio_buffer.append",
                                      "audio": base64.b64encode(pcm24[i:i + step]).decode()}))
            await asyncio.sleep(0.02)  # 2x real time, as the other transports
        await ws.send(json.dumps({"type": "input_audio_buffer.append",
                                  "audio": base64.b64encode(bytes(24000 * 2)).decode()}))
        async with asyncio.timeout(120):
            while True:
                events.append(json.loads(await ws.recv()))
                started = sum(e["type"] == "input_audio_buffer.speech_started" for e in events)
                done = sum(e["type"] == "conversation.item.input_audio_transcription.completed" for e in events)
                if done >= expected and done == started:
                    break
    return events


async def test_realtime_gives_the_websocket_session(hub: HubProcess) -> None:
    pcm16 = load_pcm16(JFK.path)
    pcm24 = np.clip(np.rint(soxr.resample(pcm16.astype(np.float32) / 32768, 16000, 24000) * 32767),
                    -32768, 32767).astype("<i2").tobytes()
    ws = CLIENTS["websocket"](hub)
    await ws.connect()
    try:
        ws_events = await stream_file(ws, pcm16.tobytes(), {"audio": PCM16})
    finally:
        await ws.close()
    ws_starts = [e["offset_ms"] for e in ws_events if e["type"] == "speech.started"]
    rt_events = await realtime_run(hub, pcm24, len(ws_starts))
    rt_starts = [e["audio_start_ms"] for e in rt_events if e["type"] == "input_audio_buffer.speech_started"]
    assert len(rt_starts) == len(ws_starts) and all(abs(a - b) <= 60 for a, b in zip(rt_starts, ws_starts, strict=True)), \
        (rt_starts, ws_starts)
    ws_text = [normalise(e["text"]) for e in ws_events if e["type"] == "transcript.final"]
    rt_text = [normalise(e["transcript"]) for e in rt_events
               if e["type"] == "conversation.item.input_audio_transcription.completed"]
    assert rt_text == ws_text


# the conformance suite's bad inputs, as the Realtime wire expresses them, and the same error codes
BAD = {
    "non_json": ("{not json", "invalid_command"),
    "unknown_command": ({"type": "response.create"}, "invalid_command"),
    "unknown_field": ({"type": "input_audio_buffer.clear", "speed": 2}, "invalid_command"),
    "unknown_provider": ({"type": "session.update", "session": {"type": "transcription", "audio": {"input": {
        "transcription": {"model": "no_such_provider"}}}}}, "unknown_provider"),
    "odd_byte_count": ({"type": "input_audio_buffer.append", "audio": base64.b64encode(b"\x00\x01\x02").decode()},
                       "invalid_audio"),
    "sample_rate_16k": ({"type": "session.update", "session": {"type": "transcription", "audio": {"input": {
        "format": {"type": "audio/pcm", "rate": 16000}}}}}, "invalid_command"),
}


@pytest.mark.parametrize("case", sorted(BAD))
async def test_bad_input_same_error_code(hub: HubProcess, case: str) -> None:
    body, code = BAD[case]
    url = hub.http.replace("http", "ws", 1) + "/v1/realtime?intent=transcription"
    async with websockets.connect(url) as ws:
        assert json.loads(await ws.recv())["type"] == "session.created"
        await ws.send(body if isinstance(body, str) else json.dumps(body))
        err = json.loads(await asyncio.wait_for(ws.recv(), 10))
        assert err["type"] == "error" and err["error"]["code"] == code, err
        await ws.send(json.dumps({"type": "input_audio_buffer.clear"}))  # the connection still serves
        assert json.loads(await asyncio.wait_for(ws.recv(), 10))["type"] == "input_audio_buffer.cleared"


async def test_conversation_intent_is_refused(hub: HubProcess) -> None:
    url = hub.http.replace("http", "ws", 1) + "/v1/realtime?intent=conversation"
    async with websockets.connect(url) as ws:
        err = json.loads(await asyncio.wait_for(ws.recv(), 10))
        assert err["type"] == "error" and err["error"]["param"] == "intent", err
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), 10)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008
