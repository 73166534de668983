"""Issue 24 items 3 and 6 on the Realtime socket, real speech, a real hub:

- the `...transcription.delta`s of an item concatenate exactly to its `...completed` transcript, in both
  turn modes (server_vad and manual commit), with the partials' settled text among them;
- `input_audio_buffer.clear` is ordered with the appends before it, even when both come in one TCP write:
  the cleared audio is never transcribed into any item."""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any
from urllib.parse import urlsplit

import numpy as np
import pytest
import soxr
from websockets.client import ClientProtocol
from websockets.frames import Frame, Opcode
from websockets.http11 import Response
from websockets.uri import parse_uri

from tests.support import HubProcess, clip, load_pcm16, wer

DELTA = "conversation.item.input_audio_transcription.delta"
COMPLETED = "conversation.item.input_audio_transcription.completed"
CLIPS = [clip("en_ljspeech_LJ001-0001"), clip("en_libri_1089-134691"), clip("en_jfk")]


def pcm24(c: Any) -> bytes:
    x = load_pcm16(c.path).astype(np.float32) / 32768
    return np.clip(np.rint(soxr.resample(x, 16000, 24000) * 32767), -32768, 32767).astype("<i2").tobytes()


def append(data: bytes) -> dict[str, Any]:
    return {"type": "input_audio_buffer.append", "audio": base64.b64encode(data).decode()}


class RawSocket:
    """A Realtime client on websockets' sans-I/O protocol over a plain TCP stream: several client events
    can go out in one TCP write (`send` with many events), as a hostile or a batching client sends them."""

    def __init__(self, hub: HubProcess) -> None:
        self.url = hub.http.replace("http", "ws", 1) + "/v1/realtime?intent=transcription"
        self.proto = ClientProtocol(parse_uri(self.url))
        self.events: list[dict[str, Any]] = []
        self.seen = 0  # events handed out by `until`
        self.reader: asyncio.StreamReader
        self.writer: asyncio.StreamWriter

    async def __aenter__(self) -> RawSocket:
        u = urlsplit(self.url)
        self.reader, self.writer = await asyncio.open_connection(u.hostname, u.port)
        self.proto.send_request(self.proto.connect())
        self._flush()
        answered = False
        while not answered:
            self.proto.receive_data(await self.reader.read(65536))
            received = self.proto.events_received()
            answered = any(isinstance(e, Response) for e in received)
            self._take(received)  # the first events may come in the same read as the handshake's answer
        return self

    def _take(self, received: list[Any]) -> None:
        self.events += [json.loads(bytes(f.data)) for f in received if isinstance(f, Frame) and f.opcode == Opcode.TEXT]

    async def __aexit__(self, *exc: object) -> None:
        self.writer.close()

    def _flush(self) -> None:
        self.writer.write(b"".join(self.proto.data_to_send()))  # one write

    async def send(self, *events: dict[str, Any]) -> None:
        for ev in events:
            self.proto.send_text(json.dumps(ev).encode())
        self._flush()
        await self.writer.drain()

    async def until(self, pred: Any, timeout: float = 120) -> list[dict[str, Any]]:  # noqa: ASYNC109
        """Events until (and with) the first one `pred` accepts."""
        try:
            return await asyncio.wait_for(self._until(pred), timeout)
        except TimeoutError:
            raise AssertionError(f"not seen in {timeout} s; got {self.events[self.seen:]}") from None

    async def _until(self, pred: Any) -> list[dict[str, Any]]:
        while True:
            for i, ev in enumerate(self.events[self.seen:], self.seen):
                if pred(ev):
                    out, self.seen = self.events[self.seen:i + 1], i + 1
                    return out
            data = await self.reader.read(65536)
            assert data, f"connection closed; got {[e['type'] for e in self.events]}"
            self.proto.receive_data(data)
            self._take(self.proto.events_received())
            self._flush()  # pongs, close


async def configure(ws: RawSocket, turn_detection: dict[str, Any] | None) -> None:
    await ws.until(lambda e: e["type"] == "session.created")
    await ws.send({"type": "session.update", "session": {"type": "transcription", "audio": {"input": {
        "format": {"type": "audio/pcm", "rate": 24000}, "transcription": {"model": "gpt-4o-transcribe", "language": "en"},
        "turn_detection": turn_detection}}}})
    await ws.until(lambda e: e["type"] == "session.updated")


async def paced(ws: RawSocket, audio: bytes) -> None:
    """The audio in 40 ms appends at twice real time, as the conformance suite streams: partials form."""
    step = 24000 * 2 // 25
    for i in range(0, len(audio), step):
        await ws.send(append(audio[i:i + step]))
        await asyncio.sleep(0.02)


def check_items(events: list[dict[str, Any]]) -> dict[str, tuple[list[str], str]]:
    """item -> (its deltas, its transcript); every item completed once, its deltas after its commit and
    before its completion, concatenating exactly to the transcript."""
    out: dict[str, tuple[list[str], str]] = {}
    for i, ev in enumerate(events):
        if ev["type"] != COMPLETED:
            continue
        item = ev["item_id"]
        assert item not in out, f"a second completed for {item}"
        mine = [e for e in events[:i] if e.get("item_id") == item]
        kinds = [e["type"] for e in mine]
        assert "input_audio_buffer.committed" in kinds, kinds
        committed = kinds.index("input_audio_buffer.committed")
        deltas = [e["delta"] for e in mine if e["type"] == DELTA]
        assert DELTA not in kinds[:committed], kinds
        assert "".join(deltas) == ev["transcript"], (deltas, ev["transcript"])
        out[item] = (deltas, ev["transcript"])
    return out


@pytest.mark.parametrize("mode", ["server_vad", "manual"])
async def test_deltas_concatenate_to_completed(hub: HubProcess, mode: str) -> None:
    silence = bytes(24000 * 2)
    async with RawSocket(hub) as ws:
        await configure(ws, {"type": "server_vad", "silence_duration_ms": 500} if mode == "server_vad" else None)
        events: list[dict[str, Any]] = []
        for c in CLIPS:
            await paced(ws, pcm24(c) + silence)
            if mode == "manual":
                await ws.send({"type": "input_audio_buffer.commit"})
                events += await ws.until(lambda e: e["type"] == COMPLETED)
        if mode == "server_vad":
            done = 0
            while done < len(CLIPS) or done < sum(e["type"] == "input_audio_buffer.speech_started" for e in events):
                events += await ws.until(lambda e: e["type"] == COMPLETED)
                done += 1
    items = check_items(events)
    assert all(deltas for deltas, text in items.values() if text)
    # the partials' settled text went out (with the commit) before the rest of the final: a decode of the
    # final alone would be one delta
    assert max(len(deltas) for deltas, _ in items.values()) >= 2, items
    text = [t for _, t in items.values()]
    if mode == "manual":
        assert len(text) == len(CLIPS) and wer([c.transcript for c in CLIPS], text) < 0.15, text
    else:
        assert wer([" ".join(c.transcript for c in CLIPS)], [" ".join(text)]) < 0.15, text


async def test_clear_in_the_same_write_as_the_appends_drops_their_audio(hub: HubProcess) -> None:
    """Manual mode: speech appended then cleared in one TCP write, then other speech and a commit. The
    cleared speech is never transcribed: one completed, the kept clip's words, not the cleared ones."""
    dropped, kept = clip("en_jfk"), clip("en_ljspeech_LJ001-0008")
    async with RawSocket(hub) as ws:
        await configure(ws, None)
        audio = pcm24(dropped)
        step = 24000 * 2 // 5  # 200 ms appends
        await ws.send(*[append(audio[i:i + step]) for i in range(0, len(audio), step)],
                      {"type": "input_audio_buffer.clear"})
        events = await ws.until(lambda e: e["type"] == "input_audio_buffer.cleared")
        await ws.send(append(pcm24(kept)), {"type": "input_audio_buffer.commit"})
        events += await ws.until(lambda e: e["type"] == COMPLETED)
        # everything the hub had to say before a later answer: a second completed would be among it
        await ws.send({"type": "session.update", "session": {"type": "transcription"}})
        events += await ws.until(lambda e: e["type"] == "session.updated")
    assert not [e for e in events if e["type"] == "error"], events
    items = check_items(events)
    committed = [e["item_id"] for e in events if e["type"] == "input_audio_buffer.committed"]
    assert list(items) == committed and len(committed) == 1, events
    (_, transcript), = items.values()
    assert wer([kept.transcript], [transcript]) < 0.3, transcript
    assert "country" not in transcript.lower(), transcript  # JFK's words
