"""Issue 22: Deepgram's live API on GET /v1/listen, driven by the official `deepgram-sdk` (v7: its
AsyncDeepgramClient with the environment pointed at the hub, every server message parsed by the SDK's
own types) against a real hub on real speech; the Sec-WebSocket-Protocol auth form, which the SDK does
not send, with the raw `websockets` client."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import websockets
from deepgram import AsyncDeepgramClient
from deepgram.core.api_error import ApiError
from deepgram.environment import DeepgramClientEnvironment
from deepgram.listen.v1.types import (
    ListenV1Error,
    ListenV1Metadata,
    ListenV1Results,
    ListenV1SpeechStarted,
    ListenV1UtteranceEnd,
)
from websockets.frames import Frame, Opcode

from tests.support import HubProcess, clip, keyed_config, load_native, running, wer

KEY = "dg-test-key-0123456789"
CLIPS = [clip("en_libri_1089-134691"), clip("en_libri_1221-135766")]


def pcm16(c: Any) -> bytes:
    import soxr
    x, sr = load_native(c.path)
    mono = x.mean(axis=1) if x.ndim == 2 else x
    y = soxr.resample(mono, sr, 16000)
    return np.clip(np.rint(y * 32767), -32768, 32767).astype("<i2").tobytes()


def client(hub: HubProcess, key: str = "x", *, token: str | None = None) -> AsyncDeepgramClient:
    """The SDK pointed at the hub: its environment's `production` is the live socket's base URL."""
    env = DeepgramClientEnvironment(base=hub.http, production=f"ws://127.0.0.1:{hub.port}",
                                    agent=f"ws://127.0.0.1:{hub.port}", agent_rest=hub.http)
    if token is not None:  # `Authorization: bearer <token>`
        return AsyncDeepgramClient(access_token=token, environment=env)
    return AsyncDeepgramClient(api_key=key, environment=env)  # `Authorization: Token <key>`


RAW = {"model": "nova-3", "encoding": "linear16", "sample_rate": 16000, "channels": 1, "language": "en"}


async def feed(conn: Any, data: bytes, *, realtime: float = 0.0, chunk: int = 3200) -> None:
    """Audio as a live source sends it: `realtime` x real time (0: as fast as the socket takes it)."""
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    for i in range(0, len(data), chunk):
        await conn.send_media(data[i:i + chunk])
        if realtime:
            await asyncio.sleep(max(0.0, t0 + (i + chunk) / 32000 / realtime - loop.time()))


async def messages(conn: Any, until: type, timeout: float = 60) -> list[Any]:  # noqa: ASYNC109
    """Every message (the SDK's types) up to and including the first of type `until`."""
    seen: list[Any] = []
    try:
        async with asyncio.timeout(timeout):
            while not (seen and isinstance(seen[-1], until)):
                seen.append(await conn.recv())
    except TimeoutError:
        raise AssertionError(f"no {until.__name__} in {timeout} s; got {seen[-5:]}") from None
    return seen


def finals(msgs: list[Any]) -> list[ListenV1Results]:
    return [m for m in msgs if isinstance(m, ListenV1Results) and m.is_final]


def text(msgs: list[Any]) -> str:
    return " ".join(m.channel.alternatives[0].transcript for m in finals(msgs)).strip()


async def test_live_transcribes_real_speech_with_interims_and_metadata(hub: HubProcess) -> None:
    silence = bytes(32000)
    audio = b"".join(pcm16(c) + silence for c in CLIPS)
    async with client(hub).listen.v1.connect(**RAW, interim_results="true", punctuate="true",
                                             endpointing=500, vad_events="true",
                                             utterance_end_ms=1000) as conn:  # type: ignore[arg-type]
        await feed(conn, audio, realtime=3.0)
        await conn.send_close_stream()
        msgs = await messages(conn, ListenV1Metadata)
    got = text(msgs)
    assert wer([" ".join(c.transcript for c in CLIPS)], [got]) <= 0.25, got
    interims = [m for m in msgs if isinstance(m, ListenV1Results) and not m.is_final]
    assert interims and any(m.channel.alternatives[0].transcript for m in interims)
    fin = finals(msgs)
    assert any(m.speech_final for m in fin), "no final ended an utterance (speech_final)"
    for m in fin:
        alt = m.channel.alternatives[0]
        assert m.metadata.request_id and m.metadata.model_uuid and m.metadata.model_info.name
        if alt.transcript:
            assert alt.words and all(w.punctuated_word and w.end >= w.start for w in alt.words)
            assert m.start <= alt.words[0].start and 0 < alt.confidence <= 1
    assert sum(isinstance(m, ListenV1SpeechStarted) for m in msgs) >= len(CLIPS)
    ends = [m for m in msgs if isinstance(m, ListenV1UtteranceEnd)]
    assert ends and ends[0].last_word_end > 0
    meta = msgs[-1]
    assert meta.duration == pytest.approx(len(audio) / 32000, abs=0.1) and meta.channels == 1
    assert meta.request_id == fin[0].metadata.request_id


async def test_finalize_gives_a_from_finalize_final_and_keepalive_keeps_the_socket(hub: HubProcess) -> None:
    speech = pcm16(CLIPS[0])
    async with client(hub).listen.v1.connect(**RAW, endpointing="false") as conn:  # type: ignore[arg-type]
        await conn.send_keep_alive()  # before any audio, and after: the socket stays
        await feed(conn, speech)
        await conn.send_keep_alive()
        await conn.send_finalize()
        msgs = await messages(conn, ListenV1Results)
        while not msgs[-1].is_final:
            msgs += await messages(conn, ListenV1Results)
        final = msgs[-1]
        assert final.from_finalize is True and final.speech_final is False
        assert wer([CLIPS[0].transcript], [final.channel.alternatives[0].transcript]) <= 0.25
        await conn.send_keep_alive()
        await feed(conn, pcm16(CLIPS[1]))  # the session goes on after a Finalize
        await conn.send_close_stream()
        rest = await messages(conn, ListenV1Metadata)
    assert wer([CLIPS[1].transcript], [text(rest)]) <= 0.25


async def test_containerised_audio_without_encoding(hub: HubProcess) -> None:
    data = CLIPS[0].path.read_bytes()  # flac: the container is sniffed
    async with client(hub).listen.v1.connect(model="nova-3", language="en") as conn:
        await feed(conn, data, chunk=8192)
        await conn.send_close_stream()
        msgs = await messages(conn, ListenV1Metadata)
    assert wer([CLIPS[0].transcript], [text(msgs)]) <= 0.25


async def test_a_bad_message_is_a_schema_error_and_the_socket_lives(hub: HubProcess) -> None:
    async with client(hub).listen.v1.connect(**RAW) as conn:  # type: ignore[arg-type]
        await conn._send({"type": "Configure2"})
        err = await conn.recv()
        assert isinstance(err, ListenV1Error) and err.variant == "SchemaError" and "Configure2" in (err.message or "")
        await conn.send_close_stream()
        await messages(conn, ListenV1Metadata)


async def test_audio_in_no_known_container_is_refused_by_name(hub: HubProcess) -> None:
    async with websockets.connect(f"ws://127.0.0.1:{hub.port}/v1/listen?model=nova-3") as ws:
        await ws.send(b"not audio at all, and no encoding given")
        err = json.loads(await ws.recv())
        with pytest.raises(websockets.ConnectionClosed):
            await ws.recv()
    assert err["type"] == "Error" and err["variant"] == "unsupported_encoding" and "encoding" in err["description"]
    assert ws.close_code == 1008


async def test_invalid_utf8_text_is_a_deepgram_error_and_a_1007_close(hub: HubProcess) -> None:
    async with websockets.connect(f"ws://127.0.0.1:{hub.port}/v1/listen?encoding=linear16&sample_rate=16000") as ws:
        await ws.send(bytes(3200))
        ws.protocol.send_frame(Frame(Opcode.TEXT, b"\xff\xfe"))  # not UTF-8 (the client would refuse it)
        ws.transport.write(b"".join(ws.protocol.data_to_send()))
        got = []
        with pytest.raises(websockets.ConnectionClosed):
            while True:
                got.append(json.loads(await ws.recv()))
    assert ws.close_code == 1007
    assert got[0]["type"] == "Error" and got[0]["variant"] == "invalid_command" and "UTF-8" in got[0]["description"]


async def test_hostile_frames_get_typed_errors_and_finals_still_come(hub: HubProcess) -> None:
    base = f"ws://127.0.0.1:{hub.port}/v1/listen"
    async with websockets.connect(base + "?model=nova-3") as ws:  # containerised: no session until audio
        await ws.send(json.dumps({"type": "Finalize"}))
        await ws.send(json.dumps({"type": "KeepAlive"}))
        await ws.send(json.dumps({"type": "CloseStream"}))
        got = [json.loads(m) async for m in ws]
    assert [m["type"] for m in got] == ["Metadata"] and got[0]["duration"] == 0 and ws.close_code == 1000
    speech = pcm16(CLIPS[0])
    async with websockets.connect(base + "?encoding=linear16&sample_rate=16000&keyterm=Prynne&keywords=Hester:2") as ws:
        await ws.send(speech[:3201])  # a sample split across messages, as Deepgram takes it
        await ws.send(speech[3201:])
        await ws.send(json.dumps({"type": "CloseStream"}))
        await ws.send(bytes(3200))  # audio after the end of the stream
        got = [json.loads(m) async for m in ws]
    kinds = [m["type"] for m in got]
    assert kinds[-1] == "Metadata" and ws.close_code == 1000, got[-3:]
    assert all(m["variant"] in ("invalid_audio", "invalid_command") and m["description"]
               for m in got if m["type"] == "Error")
    text = " ".join(m["channel"]["alternatives"][0]["transcript"] for m in got if m.get("is_final"))
    assert wer([CLIPS[0].transcript], [text]) <= 0.25, text
    assert not any(m.get("from_finalize") for m in got), "CloseStream's finals are not from a Finalize"


@pytest.mark.parametrize(("query", "param"), [
    ({"bogus_param": "1"}, "bogus_param"),
    ({"diarize": "true"}, "diarize"),
    ({"encoding": "speex", "sample_rate": 16000}, "encoding"),
    ({"encoding": "linear16"}, "sample_rate"),
    ({"interim_results": "maybe"}, "interim_results"),
    ({"model": "no-such-model"}, "model"),
    ({"multichannel": "true", "channels": 2}, "multichannel"),  # containerised audio is not split by channel
])
async def test_a_bad_parameter_is_refused_at_the_handshake(hub: HubProcess, query: dict[str, Any],
                                                           param: str) -> None:
    with pytest.raises(websockets.InvalidStatus) as e:
        async with websockets.connect(f"ws://127.0.0.1:{hub.port}/v1/listen?"
                                      + "&".join(f"{k}={v}" for k, v in query.items())):
            pass
    resp = e.value.response
    assert resp.status_code == 400
    body = json.loads(resp.body or b"{}")
    assert body["param"] == param and param in body["err_msg"] and body["request_id"]
    assert json.loads(resp.headers["dg-error"]) == body
    # and the SDK sees Deepgram's refusal
    if param == "bogus_param":
        with pytest.raises(ApiError) as sdk:
            async with client(hub).listen.v1.connect(model="nova-3", request_options={  # type: ignore[typeddict-item]
                    "additional_query_parameters": query}):
                pass
        assert sdk.value.status_code == 400


@pytest.fixture(scope="module")
def keyed_hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HubProcess]:
    cfg = keyed_config({"key": KEY, "name": "dg"})
    tmp: Path = tmp_path_factory.mktemp("dg")
    yield from running(cfg, tmp)


async def test_auth_token_key_bearer_token_and_subprotocol(keyed_hub: HubProcess) -> None:
    import httpx
    speech = pcm16(CLIPS[0])
    async with client(keyed_hub, KEY).listen.v1.connect(**RAW) as conn:  # type: ignore[arg-type]
        await feed(conn, speech)
        await conn.send_close_stream()
        assert wer([CLIPS[0].transcript], [text(await messages(conn, ListenV1Metadata))]) <= 0.25
    with pytest.raises(ApiError) as e:
        async with client(keyed_hub, "wrong-key").listen.v1.connect(**RAW):  # type: ignore[arg-type]
            pass
    assert e.value.status_code == 401
    async with httpx.AsyncClient() as http:
        r = await http.post(keyed_hub.http + "/v1/tokens", json={}, headers={"Authorization": f"Bearer {KEY}"})
    token = r.json()["token"]
    async with client(keyed_hub, token=token).listen.v1.connect(**RAW) as conn:  # type: ignore[arg-type]
        await feed(conn, speech)
        await conn.send_close_stream()
        assert wer([CLIPS[0].transcript], [text(await messages(conn, ListenV1Metadata))]) <= 0.25
    url = f"ws://127.0.0.1:{keyed_hub.port}/v1/listen?encoding=linear16&sample_rate=16000"
    async with websockets.connect(url, subprotocols=["token", KEY]) as ws:  # type: ignore[list-item]
        assert ws.subprotocol == "token"
        await ws.send(speech)
        await ws.send(json.dumps({"type": "CloseStream"}))
        got = [json.loads(m) async for m in ws]
    assert got[-1]["type"] == "Metadata"
    assert wer([CLIPS[0].transcript], [" ".join(m["channel"]["alternatives"][0]["transcript"]
                                                for m in got if m.get("is_final"))]) <= 0.25
    with pytest.raises(websockets.InvalidStatus) as refused:
        async with websockets.connect(url, subprotocols=["token", "nope"]):  # type: ignore[list-item]
            pass
    assert refused.value.response.status_code == 401
    assert json.loads(refused.value.response.body or b"{}")["err_code"] == "INVALID_AUTH"


async def test_prerecorded_file_through_the_sdk(hub: HubProcess) -> None:
    c = clip("en_ljspeech_LJ001-0001")
    res = await client(hub).listen.v1.media.transcribe_file(request=c.path.read_bytes(), model="nova-3",
                                                            smart_format=True, paragraphs=True, tag=["t1"])
    alt = res.results.channels[0].alternatives[0]  # type: ignore[union-attr,index]
    assert wer([c.transcript], [alt.transcript or ""]) <= 0.25, alt.transcript
    assert alt.words and alt.words[0].punctuated_word and 0 < (alt.confidence or 0) <= 1
    assert alt.paragraphs and alt.paragraphs.paragraphs and alt.paragraphs.paragraphs[0].sentences
    meta = res.metadata  # type: ignore[union-attr]
    assert meta.duration == pytest.approx(c.seconds, abs=0.1) and meta.channels == 1 and meta.models
    assert meta.tags == ["t1"] and len(meta.sha256 or "") == 64


async def test_prerecorded_raw_pcm_and_refusals(hub: HubProcess) -> None:
    import httpx
    url = f"{hub.http}/v1/listen"
    async with httpx.AsyncClient(timeout=120) as http:
        r = await http.post(url, params={"encoding": "linear16", "sample_rate": 16000, "punctuate": "false"},
                            content=pcm16(CLIPS[0]), headers={"Content-Type": "audio/l16"})
        assert r.status_code == 200, r.text
        got = r.json()["results"]["channels"][0]["alternatives"][0]["transcript"]
        assert wer([CLIPS[0].transcript], [got]) <= 0.25 and got == got.lower() and "," not in got
        refused = [
            (await http.post(url, json={"url": "https://example.com/a.wav"}), "url", 400),
            (await http.post(url, params={"summarize": "v2"}, content=b"x"), "summarize", 400),
            (await http.post(url, params={"interim_results": "true"}, content=b"x"), "interim_results", 400),
            (await http.post(url, content=b""), "body", 400),
        ]
        for resp, param, status in refused:
            assert resp.status_code == status, (param, resp.text)
            body = resp.json()
            assert body["param"] == param and body["err_msg"] and body["request_id"], body
        bad = await http.post(url, content=b"not audio at all")
        assert bad.status_code == 400 and bad.json()["err_code"] == "INVALID_AUDIO", bad.text


async def test_prerecorded_auth_takes_keys_as_deepgram_sends_them(keyed_hub: HubProcess) -> None:
    import httpx
    data = CLIPS[0].path.read_bytes()
    res = await client(keyed_hub, KEY).listen.v1.media.transcribe_file(request=data, model="nova-3")
    assert wer([CLIPS[0].transcript], [res.results.channels[0].alternatives[0].transcript or ""]) <= 0.25  # type: ignore[union-attr,index]
    with pytest.raises(ApiError) as e:
        await client(keyed_hub, "wrong-key").listen.v1.media.transcribe_file(request=data, model="nova-3")
    assert e.value.status_code == 401 and e.value.body["err_code"] == "INVALID_AUTH"  # type: ignore[index]
    async with httpx.AsyncClient() as http:
        token = (await http.post(keyed_hub.http + "/v1/tokens", json={},
                                 headers={"Authorization": f"Bearer {KEY}"})).json()["token"]
        r = await http.post(keyed_hub.http + "/v1/listen", content=data, headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 401, r.text  # a browser token only starts streaming sessions, as on /v1/transcribe
