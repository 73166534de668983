"""Issue 24 item 6: every field of a Realtime `session.update` (GA) or `transcription_session.update`
(beta) is checked when the update comes. An out-of-range or malformed value is answered with an `error`
(`invalid_request_error`, code `invalid_command`, `param` naming the field); the session keeps its previous
configuration and the next audio is served under it, never `internal`."""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any

import pytest
import websockets

from tests.support import HubProcess

GA = "session.audio.input"
BAD_TURN_DETECTION = {
    "threshold_5": ({"threshold": 5}, "threshold"),
    "threshold_negative": ({"threshold": -1}, "threshold"),
    "threshold_0": ({"threshold": 0}, "threshold"),
    "silence_1ms": ({"silence_duration_ms": 1}, "silence_duration_ms"),
    "silence_1e9ms": ({"silence_duration_ms": 1e9}, "silence_duration_ms"),
    "prefix_negative": ({"prefix_padding_ms": -5}, "prefix_padding_ms"),
    "prefix_too_long": ({"prefix_padding_ms": 60_000}, "prefix_padding_ms"),
    "threshold_not_a_number": ({"threshold": "high"}, "threshold"),
    "silence_fractional": ({"silence_duration_ms": 500.5}, "silence_duration_ms"),
}
BAD_TRANSCRIPTION = {
    "prompt_over_limit": ({"prompt": "word " * 1000}, "prompt"),
    "language_malformed": ({"language": "en_US!!"}, "language"),
    "language_not_a_tag": ({"language": "123456789"}, "language"),
}


def ga(turn_detection: dict[str, Any] | None = None, transcription: dict[str, Any] | None = None) -> dict[str, Any]:
    inp: dict[str, Any] = {"format": {"type": "audio/pcm", "rate": 24000}}
    if turn_detection is not None:
        inp["turn_detection"] = {"type": "server_vad", **turn_detection}
    if transcription is not None:
        inp["transcription"] = {"model": "whisper-1", **transcription}
    return {"type": "session.update", "event_id": "bad", "session": {"type": "transcription", "audio": {"input": inp}}}


def beta(turn_detection: dict[str, Any] | None = None, transcription: dict[str, Any] | None = None) -> dict[str, Any]:
    s: dict[str, Any] = {"input_audio_format": "pcm16"}
    if turn_detection is not None:
        s["turn_detection"] = {"type": "server_vad", **turn_detection}
    if transcription is not None:
        s["input_audio_transcription"] = {"model": "whisper-1", **transcription}
    return {"type": "transcription_session.update", "event_id": "bad", "session": s}


CASES = {**{f"ga_{k}": (ga(turn_detection=v), f"{GA}.turn_detection.{p}") for k, (v, p) in BAD_TURN_DETECTION.items()},
         **{f"ga_{k}": (ga(transcription=v), f"{GA}.transcription.{p}") for k, (v, p) in BAD_TRANSCRIPTION.items()},
         **{f"beta_{k}": (beta(turn_detection=v), f"session.turn_detection.{p}")
            for k, (v, p) in BAD_TURN_DETECTION.items()},
         **{f"beta_{k}": (beta(transcription=v), f"session.input_audio_transcription.{p}")
            for k, (v, p) in BAD_TRANSCRIPTION.items()}}


async def next_event(ws: Any) -> dict[str, Any]:
    return json.loads(await asyncio.wait_for(ws.recv(), 30))  # type: ignore[no-any-return]


@pytest.mark.parametrize("case", sorted(CASES))
async def test_bad_field_is_refused_and_the_session_keeps_its_config(hub: HubProcess, case: str) -> None:
    bad, param = CASES[case]
    url = hub.http.replace("http", "ws", 1) + "/v1/realtime?intent=transcription"
    async with websockets.connect(url, max_size=None) as ws:
        assert (await next_event(ws))["type"] == "session.created"
        # manual commit first: if the bad update took effect (server_vad), the commit below would be refused
        await ws.send(json.dumps({"type": "session.update", "session": {"type": "transcription", "audio": {
            "input": {"turn_detection": None}}}}))
        assert (await next_event(ws))["type"] == "session.updated"
        await ws.send(json.dumps(bad))
        err = await next_event(ws)
        assert err["type"] == "error", err
        assert err["error"]["type"] == "invalid_request_error" and err["error"]["code"] == "invalid_command", err
        assert err["error"]["param"] == param and err["error"]["event_id"] == "bad", err
        # the audio after it is served under the previous configuration
        await ws.send(json.dumps({"type": "input_audio_buffer.append",
                                  "audio": base64.b64encode(bytes(24000 * 2 // 5)).decode()}))
        await ws.send(json.dumps({"type": "input_audio_buffer.commit"}))
        answer = await next_event(ws)
        assert answer["type"] == "input_audio_buffer.committed", answer
        done = await next_event(ws)
        assert done["type"] == "conversation.item.input_audio_transcription.completed", done
        assert done["item_id"] == answer["item_id"] and done["transcript"] == "", done


async def test_edges_of_the_ranges_are_accepted(hub: HubProcess) -> None:
    url = hub.http.replace("http", "ws", 1) + "/v1/realtime?intent=transcription"
    async with websockets.connect(url) as ws:
        assert (await next_event(ws))["type"] == "session.created"
        for td in ({"threshold": 0.01, "silence_duration_ms": 50, "prefix_padding_ms": 0},
                   {"threshold": 0.99, "silence_duration_ms": 10_000, "prefix_padding_ms": 2000}):
            await ws.send(json.dumps(ga(turn_detection=td, transcription={"prompt": "x" * 2000, "language": "en-GB"})))
            upd = await next_event(ws)
            assert upd["type"] == "session.updated", upd
            got = upd["session"]["audio"]["input"]["turn_detection"]
            assert {k: got[k] for k in td} == td, got
