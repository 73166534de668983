"""Issue 22: hostile input on the Deepgram socket (GET /v1/listen). Each gets Deepgram's own behaviour or a
typed error naming the problem, never a crash, a hang or an `internal` error, and the hub serves the next
client; and KeepAlive really keeps an idle stream open (the hub's idle timeout ends one that sends nothing).
Raw `websockets` for what the official SDK would not send; the SDK where it would."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import websockets
from deepgram.listen.v1.types import ListenV1Metadata

from tests.contract.test_deepgram import CLIPS, RAW, client, feed, messages, pcm16
from tests.support import HubProcess, base_config, running, wer

IDLE_S = 2.0  # the idle hub's limits.idle_timeout_s
RAW_QUERY = "encoding=linear16&sample_rate=16000"


def url(hub: HubProcess, query: str = RAW_QUERY) -> str:
    return f"ws://127.0.0.1:{hub.port}/v1/listen?{query}"


async def drain(ws: Any, timeout: float = 60) -> list[dict[str, Any]]:  # noqa: ASYNC109
    """Every message up to the close."""
    got: list[dict[str, Any]] = []
    async with asyncio.timeout(timeout):
        async for m in ws:
            got.append(json.loads(m))
    return got


def finals_text(got: list[dict[str, Any]]) -> str:
    return " ".join(m["channel"]["alternatives"][0]["transcript"] for m in got if m.get("is_final")).strip()


async def assert_still_serves(hub: HubProcess) -> None:
    """The hub answers the next client with a transcript."""
    async with websockets.connect(url(hub)) as ws:
        await ws.send(pcm16(CLIPS[0]))
        await ws.send(json.dumps({"type": "CloseStream"}))
        got = await drain(ws)
    assert got[-1]["type"] == "Metadata" and wer([CLIPS[0].transcript], [finals_text(got)]) <= 0.25


@pytest.mark.parametrize(("query", "param"), [
    ("encoding=linear16&sample_rate=abc", "sample_rate"),
    ("encoding=linear16&sample_rate=1000", "sample_rate"),
    ("encoding=linear16&sample_rate=384000", "sample_rate"),
    ("encoding=linear16&sample_rate=16000&channels=0", "channels"),
    ("encoding=linear16&sample_rate=16000&channels=99", "channels"),
    ("encoding=&sample_rate=16000", "encoding"),
    ("encoding=LINEAR16&sample_rate=16000", "encoding"),
    ("encoding=linear16&sample_rate=16000&endpointing=soon", "endpointing"),
    ("encoding=linear16&sample_rate=16000&utterance_end_ms=10", "utterance_end_ms"),
    ("model=nova-3&model=nova-2", "model"),
    ("model=" + "x" * 200, "model"),
    ("language=not%20a%20language", "language"),
    ("callback=http://example.com/hook", "callback"),
    ("keyterm=" + "a" * 6000, "keyterm"),
    ("keywords=" + "b" * 6000 + ":2", "keywords"),
    ("&".join(f"keyterm=w{i}" for i in range(150)), "keyterm"),
    ("x-unknown%00=1", "x-unknown\x00"),
])
async def test_bad_query_parameters_are_refused_naming_them(hub: HubProcess, query: str, param: str) -> None:
    with pytest.raises(websockets.InvalidStatus) as e:
        async with websockets.connect(url(hub, query)):
            pass
    resp = e.value.response
    body = json.loads(resp.body or b"{}")
    assert resp.status_code == 400, body
    assert body["param"] == param and body["err_code"] in ("INVALID_QUERY_PARAMETER", "UNSUPPORTED_ENCODING"), body
    assert body["err_msg"] and body["request_id"]


async def test_text_that_is_not_a_message_is_a_schema_error_and_the_stream_goes_on(hub: HubProcess) -> None:
    bad = ["hello", "{", "[1, 2]", "null", "42", "{}", '{"type": null}', '{"type": "KeepAlive", "extra": 1}',
           '{"type": "Finalize", "channel": "0"}', '{"type": "Finalize", "channel": -1}', "\u0000\u2028" * 10]
    async with websockets.connect(url(hub)) as ws:
        for text in bad:
            await ws.send(text)
        replies = [json.loads(await ws.recv()) for _ in bad]
        await ws.send(pcm16(CLIPS[0]))
        await ws.send(json.dumps({"type": "CloseStream"}))
        got = await drain(ws)
    for text, reply in zip(bad, replies, strict=True):
        assert reply["type"] == "Error" and reply["variant"] == "SchemaError", (text, reply)
        assert reply["message"] == text and "KeepAlive" in reply["description"]
    assert got[-1]["type"] == "Metadata" and ws.close_code == 1000
    assert wer([CLIPS[0].transcript], [finals_text(got)]) <= 0.25


async def test_configure_is_answered_configure_failure(hub: HubProcess) -> None:
    """Deepgram's mid-stream Configure (keyterms): the hub fixes keyterms at the handshake, and says so in
    Deepgram's own answer for a model that cannot take them."""
    async with websockets.connect(url(hub, RAW_QUERY + "&keyterm=Hester")) as ws:
        await ws.send(json.dumps({"type": "Configure", "keyterms": ["Prynne"]}))
        reply = json.loads(await ws.recv())
        await ws.send(json.dumps({"type": "CloseStream"}))
        await drain(ws)
    assert reply["type"] == "ConfigureFailure" and reply["code"] == "CONFIGURE_KEYTERMS_NOT_SUPPORTED"
    assert reply["request_id"] and "keyterm" in reply["description"]


async def test_huge_frames(hub: HubProcess) -> None:
    """An audio frame over limits.max_message_bytes is refused by size and the stream goes on; a text frame
    of megabytes is a SchemaError quoting its start; a frame over the server's WebSocket limit (16 MiB) closes
    the connection 1009, as any WebSocket server does, and the hub serves the next client."""
    speech = pcm16(CLIPS[0])
    async with websockets.connect(url(hub), max_size=None) as ws:
        await ws.send(bytes(2 * 1024 * 1024))
        err = json.loads(await ws.recv())
        await ws.send("x" * (4 * 1024 * 1024))
        schema = json.loads(await ws.recv())
        await ws.send(speech)
        await ws.send(json.dumps({"type": "CloseStream"}))
        got = await drain(ws)
    assert err["type"] == "Error" and err["variant"] == "payload_too_large" and "limit" in err["description"]
    assert schema["variant"] == "SchemaError" and len(schema["message"]) <= 500
    assert got[-1]["type"] == "Metadata" and wer([CLIPS[0].transcript], [finals_text(got)]) <= 0.25
    async with websockets.connect(url(hub), max_size=None) as ws:
        await ws.send(bytes(17 * 1024 * 1024))
        with pytest.raises(websockets.ConnectionClosed):
            await drain(ws)
    assert ws.close_code == 1009
    await assert_still_serves(hub)


async def test_audio_that_is_not_the_encoding_it_claims(hub: HubProcess) -> None:
    """encoding=opus (Ogg Opus) fed raw PCM, and linear16 fed a FLAC file: a typed error or noise, no crash."""
    async with websockets.connect(url(hub, "encoding=opus&sample_rate=48000")) as ws:
        await ws.send(pcm16(CLIPS[0])[:64000])
        await ws.send(json.dumps({"type": "CloseStream"}))
        got = await drain(ws)
    errors = [m for m in got if m["type"] == "Error"]
    assert errors and all(e["variant"] == "invalid_audio" and e["description"] for e in errors), got
    async with websockets.connect(url(hub)) as ws:
        await ws.send(CLIPS[0].path.read_bytes())  # FLAC bytes read as samples: noise, not a failure
        await ws.send(json.dumps({"type": "CloseStream"}))
        got = await drain(ws)
    assert got[-1]["type"] == "Metadata" and not any(m["type"] == "Error" for m in got), got
    await assert_still_serves(hub)


async def test_commands_out_of_order(hub: HubProcess) -> None:
    """Finalize with no audio, Finalize twice, KeepAlive after CloseStream, a second CloseStream, audio after
    the end: none is an internal error and the stream ends with Metadata."""
    async with websockets.connect(url(hub)) as ws:
        for cmd in ("Finalize", "Finalize", "KeepAlive"):
            await ws.send(json.dumps({"type": cmd}))
        await ws.send(pcm16(CLIPS[0]))
        for cmd in ("Finalize", "Finalize", "CloseStream", "KeepAlive", "CloseStream", "Finalize"):
            await ws.send(json.dumps({"type": cmd}))
        await ws.send(bytes(3200))
        got = await drain(ws)
    assert got[-1]["type"] == "Metadata" and ws.close_code == 1000, got[-3:]
    assert not any(m["type"] == "Error" and m["variant"] == "internal" for m in got), got
    assert wer([CLIPS[0].transcript], [finals_text(got)]) <= 0.25


@pytest.fixture(scope="module")
def idle_hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HubProcess]:
    cfg = base_config().replace("idle_timeout_s: 20", f"idle_timeout_s: {IDLE_S}")
    assert f"idle_timeout_s: {IDLE_S}" in cfg
    tmp: Path = tmp_path_factory.mktemp("dg-idle")
    yield from running(cfg, tmp)


async def test_keepalive_keeps_an_idle_stream_open(idle_hub: HubProcess) -> None:
    """With no audio and no KeepAlive the hub ends the stream after its idle timeout (Metadata, close 1000);
    KeepAlive every IDLE_S / 4 (pipecat sends one every 5 s against Deepgram's 10 s) keeps it open for twice
    that long, and the speech sent afterwards is transcribed."""
    loop = asyncio.get_running_loop()
    async with client(idle_hub).listen.v1.connect(**RAW) as conn:  # type: ignore[arg-type]
        t0 = loop.time()
        msgs = await messages(conn, ListenV1Metadata, timeout=IDLE_S * 5)
    assert loop.time() - t0 >= IDLE_S * 0.9 and msgs[-1].duration == 0
    async with client(idle_hub).listen.v1.connect(**RAW) as conn:  # type: ignore[arg-type]
        reader = asyncio.ensure_future(conn.recv())
        t0 = loop.time()
        while loop.time() - t0 < IDLE_S * 2:
            await conn.send_keep_alive()
            done, _ = await asyncio.wait([reader], timeout=IDLE_S / 4)
            assert not done, f"the stream ended while kept alive: {reader.result()}"
        await feed(conn, pcm16(CLIPS[0]))
        await conn.send_close_stream()
        first = await reader
        msgs = [first, *await messages(conn, ListenV1Metadata)] if not isinstance(first, ListenV1Metadata) \
            else [first]
    said = " ".join(m.channel.alternatives[0].transcript for m in msgs if getattr(m, "is_final", False))
    assert wer([CLIPS[0].transcript], [said]) <= 0.25, said
