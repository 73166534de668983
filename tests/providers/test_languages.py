"""Issue 11 items 5-7 and routing by detected language (issue 23 item 2, issue 24 item 4) end to end: the
DEFAULT config on a real hub process, real models (tiny.en and bundled:base), real speech over WebSocket,
gRPC, the OpenAI routes and the Realtime socket (official `openai` client)."""

from __future__ import annotations

import asyncio
import base64
import json
import re
from collections.abc import Iterator
from typing import Any

import grpc
import httpx
import jiwer
import numpy as np
import openai
import pytest
import websockets

from asrhub.providers.localise import has_han, localise_text
from tests.support import SPEECH as DATA  # tests/data/speech (tests/data/README.md: sources and licences)
from tests.support import (
    Clip,
    HubProcess,
    base_config,
    clip,
    final_text,
    finals,
    load_pcm16,
    manifest,
    wer,
    ws_stream,
)


def mandarin() -> list[Clip]:
    clips = [c for c in manifest() if c.language == "zh" and c.transcript and (DATA / c.file).is_file()]
    assert len(clips) >= 9, "the Mandarin dev clips are copied into tests/data"
    return clips


def chars(text: str) -> str:
    """Scoring form: Simplified, without punctuation and spaces."""
    return re.sub(r"[\W_]+", "", localise_text(text, "zh"))


def silence(seconds: float) -> bytes:
    return np.zeros(int(16000 * seconds), dtype=np.int16).tobytes()


async def _error_for(hub: HubProcess, start: dict[str, Any]) -> dict[str, Any]:
    async with websockets.connect(hub.ws) as ws:
        await ws.send(json.dumps({"type": "start", **start}))
        return json.loads(await asyncio.wait_for(ws.recv(), 30))


#: a space between two Chinese characters (the streaming wrapper once joined its words with spaces)
CJK_GAP = re.compile(r"[\u4e00-\u9fff] +[\u4e00-\u9fff]")


@pytest.fixture(scope="module")
def mandarin_runs(hub: HubProcess) -> list[tuple[Clip, list[dict[str, Any]]]]:
    """Every Mandarin dev clip streamed with `language: zh`, one after the other at twice real time
    (base at beam 5 costs ~3x tiny.en: on a shared 2-core machine, several at once only queue)."""

    async def all_runs() -> list[tuple[Clip, list[dict[str, Any]]]]:
        out = []
        for c in mandarin():
            pcm = load_pcm16(DATA / c.file).tobytes() + silence(1.0)
            out.append((c, await ws_stream(hub.ws, pcm, start={"language": "zh"}, chunk_bytes=3200, realtime=2.0,
                                           timeout=300)))
        return out

    return asyncio.run(all_runs())


def test_mandarin_streams_with_the_default_config(mandarin_runs: list[tuple[Clip, list[dict[str, Any]]]]) -> None:
    refs, hyps = [], []
    for c, events in mandarin_runs:
        started = events[0]
        assert started["type"] == "session.started" and started["provider"] == "whisper_multi", c.file
        text = final_text(events)
        for f in finals(events):
            assert f["language"] == "zh" and f["provider"] == "whisper_multi", f
            assert localise_text(f["text"], "zh") == f["text"], f"{c.file}: not Simplified: {f['text']}"
        for e in events:  # streamed text is written as the offline decode writes it: no space inside Chinese
            if e["type"] in ("transcript.partial", "transcript.final"):
                assert not CJK_GAP.search(e["text"]) and not CJK_GAP.search(e.get("stable_text") or ""), e
        refs.append(chars(c.transcript))
        hyps.append(chars(text))
    cer = jiwer.cer(refs, hyps)
    print(f"Mandarin CER over {len(refs)} clips (WebSocket, default config): {cer:.3f}")
    assert cer <= 0.25, list(zip(refs, hyps, strict=True))


async def test_auto_without_detection_decodes_each_utterance_on_the_multilingual_model(
        no_detect_hub: HubProcess) -> None:
    """`providers.detect: false` keeps the old routing: `auto` goes to the "*" route, which detects per
    utterance."""
    en, zh = clip("en_libri_1089-134691"), clip("zh_funasr_asr_example")
    first = load_pcm16(DATA / en.file).tobytes() + silence(1.0)
    pcm = first + load_pcm16(DATA / zh.file).tobytes() + silence(1.0)
    events = await ws_stream(no_detect_hub.ws, pcm, start={"language": "auto"}, chunk_bytes=3200, realtime=2.0,
                             timeout=300)
    assert events[0]["provider"] == "whisper_multi" and events[0]["language"] == "auto"
    assert not [e for e in events if e["type"] == "provider.switched"]
    boundary_ms = len(first) // 32
    fs = [f for f in finals(events) if f["text"]]
    english = [f for f in fs if f["end_ms"] <= boundary_ms + 300]
    chinese = [f for f in fs if f["start_ms"] >= boundary_ms - 300]
    assert english and chinese, fs
    assert all(f["language"] == "en" for f in english), english
    assert all(f["language"] == "zh" for f in chinese), chinese
    assert "hour" in " ".join(f["text"] for f in english).lower()
    zh_text = "".join(f["text"] for f in chinese)
    assert has_han(zh_text) and localise_text(zh_text, "zh") == zh_text  # detected Chinese: Simplified
    assert all("language" in f for f in finals(events))  # every final, empty ones included


async def test_zh_tw_gives_traditional_characters(hub: HubProcess) -> None:
    c = clip("zh_aishell_BAC009S0724W0121")  # 广州市房地产中介协会分析
    events = await ws_stream(hub.ws, load_pcm16(DATA / c.file).tobytes() + silence(1.0), start={"language": "zh-TW"},
                             chunk_bytes=1600, timeout=300)
    text = final_text(events)
    assert has_han(text) and localise_text(text, "zh-TW") == text, text
    assert localise_text(text, "zh") != text, f"no Traditional character in {text}"  # e.g. 廣, 產, 協, 會
    assert {f["language"] for f in finals(events)} == {"zh-TW"}
    for p in (e for e in events if e["type"] == "transcript.partial"):
        assert localise_text(p["text"], "zh-TW") == p["text"], p  # partials in the same script


async def test_translate_gives_english_text(hub: HubProcess) -> None:
    c = clip("zh_funasr_asr_example")  # 欢迎大家来体验达摩院推出的语音识别模型
    events = await ws_stream(hub.ws, load_pcm16(DATA / c.file).tobytes() + silence(1.0),
                             start={"language": "zh", "task": "translate"}, chunk_bytes=3200, realtime=2.0, timeout=300)
    text = final_text(events)
    assert not has_han(text), text
    words = re.findall(r"[A-Za-z]+", text)
    assert len(words) >= 3 and len("".join(words)) >= 0.8 * len(re.sub(r"[\W\d_]+", "", text)), text
    assert "welcome" in text.lower(), text


async def test_hotwords_and_prompt_fix_a_proper_name(hub: HubProcess) -> None:
    """tiny.en hears LibriSpeech's "Hester Prynne" as "Hester Prin"; the hotword (WebSocket) or a
    prompt (gRPC streaming) corrects it."""
    c = clip("en_libri_1221-135766")
    pcm = load_pcm16(DATA / c.file).tobytes() + silence(1.0)
    plain, hot = await asyncio.gather(
        ws_stream(hub.ws, pcm, start={"language": "en"}, chunk_bytes=3200, realtime=2.0),
        ws_stream(hub.ws, pcm, start={"language": "en", "hotwords": ["Hester Prynne"]}, chunk_bytes=3200,
                  realtime=2.0, timeout=300))
    assert "prynne" not in final_text(plain).lower(), final_text(plain)
    assert "hester prynne" in final_text(hot).lower(), final_text(hot)
    assert plain[0]["provider"] == hot[0]["provider"] == "faster_whisper"

    from asrhub.wire import grpc_gen
    pb, pb_grpc = grpc_gen.load()

    async def requests() -> Any:
        yield pb.StreamingRequest(start=pb.StartSession(language="en", prompt="Hester Prynne, of The Scarlet Letter."))
        for i in range(0, len(pcm), 6400):
            yield pb.StreamingRequest(audio=pcm[i:i + 6400])
        yield pb.StreamingRequest(stop=pb.Stop())

    async with grpc.aio.insecure_channel(f"127.0.0.1:{hub.grpc_port}") as ch:
        texts = [ev.transcript.text async for ev in pb_grpc.AsrHubStub(ch).StreamingRecognize(requests(), timeout=120)
                 if ev.type == "transcript.final"]
    assert "hester prynne" in " ".join(texts).lower(), texts


async def test_rest_takes_language_task_and_hotwords(hub: HubProcess) -> None:
    c = clip("en_libri_1221-135766")
    async with httpx.AsyncClient(base_url=hub.http, timeout=120) as client:
        r = await client.post("/v1/transcribe", files={"file": (c.file, (DATA / c.file).read_bytes())},
                              data={"language": "en", "hotwords": ["Hester Prynne"]})
        assert r.status_code == 200, r.text
        assert "hester prynne" in r.json()["text"].lower() and r.json()["provider"] == "faster_whisper"
        zh = clip("zh_aishell_BAC009S0724W0121")
        r = await client.post("/v1/transcribe", files={"file": (zh.file, (DATA / zh.file).read_bytes())},
                              data={"language": "zh-HK"})
        assert r.status_code == 200 and r.json()["provider"] == "whisper_multi", r.text
        assert r.json()["language"] == "zh-HK" and localise_text(r.json()["text"], "zh-HK") == r.json()["text"]
        r = await client.post("/v1/transcribe", files={"file": (c.file, (DATA / c.file).read_bytes())},
                              data={"provider": "faster_whisper", "task": "translate"})
        assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_command"
        assert "cannot translate" in r.json()["error"]["message"]
        caps = {p["name"]: p["capabilities"] for p in (await client.get("/v1/providers")).json()}
        assert caps["whisper_multi"]["translate"] and not caps["faster_whisper"]["translate"]
        assert caps["faster_whisper"]["prompt"] and caps["faster_whisper"]["hotwords"]


async def test_requests_a_provider_cannot_honour_are_refused(hub: HubProcess) -> None:
    for start, needle in [
        ({"provider": "faster_whisper", "task": "translate"}, "cannot translate"),
        ({"provider": "faster_whisper", "language": "zh-TW"}, "language 'zh-TW'"),
        ({"language": "xx"}, "language 'xx' is not a known language code (e.g. en, zh-CN, zh-TW) or 'auto'"),
        ({"language": "zu"}, "provider 'whisper_multi' does not support language 'zu' (supports: auto, af, am, "),
        ({"language": "zh TW"}, "BCP-47"),
    ]:
        ev = await _error_for(hub, start)
        assert ev["type"] == "error" and ev["code"] == "invalid_command", (start, ev)
        assert needle in ev["message"], (start, ev)
    from asrhub.wire import grpc_gen
    pb, pb_grpc = grpc_gen.load()
    c = clip("en_libri_1221-135766")
    async with grpc.aio.insecure_channel(f"127.0.0.1:{hub.grpc_port}") as ch:
        stub = pb_grpc.AsrHubStub(ch)
        for req in (pb.RecognizeRequest(audio=(DATA / c.file).read_bytes(), language="xx"),
                    pb.RecognizeRequest(audio=(DATA / c.file).read_bytes(), provider="faster_whisper", task="translate"),
                    pb.RecognizeRequest(audio=(DATA / c.file).read_bytes(), provider="faster_whisper", task="summarise")):
            with pytest.raises(grpc.aio.AioRpcError) as exc:
                await stub.Recognize(req, timeout=60)
            assert exc.value.code() == grpc.StatusCode.INVALID_ARGUMENT, req
            assert dict(exc.value.trailing_metadata() or ())["asrhub-error-code"] == "invalid_command"
        res = await stub.Recognize(pb.RecognizeRequest(audio=(DATA / c.file).read_bytes(), language="en-US",
                                                       hotwords=["Hester Prynne"]), timeout=120)
        assert "hester prynne" in res.text.lower() and res.language == "en-US" and res.provider == "faster_whisper"
        caps = {p.name: p.capabilities for p in (await stub.ListProviders(pb.ListProvidersRequest(), timeout=10)).providers}
        assert caps["whisper_multi"].translate and not caps["faster_whisper"].translate


async def test_providers_list_the_languages_each_model_knows(hub: HubProcess) -> None:
    """`GET /v1/providers` and gRPC ListProviders list what a start may ask for: the multilingual Whisper's
    "auto" plus its 100 codes (not just "auto"), the English-only model's "en"."""
    from asrhub.core.language import WHISPER_LANGUAGES
    from asrhub.wire import grpc_gen

    async with httpx.AsyncClient(base_url=hub.http, timeout=30) as client:
        caps = {p["name"]: p["capabilities"] for p in (await client.get("/v1/providers")).json()}
    multi = caps["whisper_multi"]["languages"]
    assert multi[0] == "auto" and set(multi[1:]) == WHISPER_LANGUAGES and len(multi) == 1 + len(WHISPER_LANGUAGES)
    assert {"zh", "fr", "yue"} <= set(multi) and "zu" not in multi, multi
    assert caps["faster_whisper"]["languages"] == ["en"], caps["faster_whisper"]
    pb, pb_grpc = grpc_gen.load()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{hub.grpc_port}") as ch:
        listed = await pb_grpc.AsrHubStub(ch).ListProviders(pb.ListProvidersRequest(), timeout=10)
    assert {p.name: list(p.capabilities.languages) for p in listed.providers}["whisper_multi"] == multi


async def test_sse_and_socketio_take_the_same_start_fields(hub: HubProcess) -> None:
    """The new StartSession fields on the two remaining transports: accepted where the provider can, and
    `invalid_command` where it cannot."""
    import socketio

    async with httpx.AsyncClient(base_url=hub.http, timeout=30) as client:
        r = await client.post("/v1/sessions", json={"provider": "faster_whisper", "task": "translate"})
        assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_command", r.text
        r = await client.post("/v1/sessions", json={"language": "zh-HK", "prompt": "粵語", "hotwords": ["香港"]})
        assert r.status_code == 201, r.text
        assert (await client.delete(f"/v1/sessions/{r.json()['session_id']}")).status_code == 204
    sio = socketio.AsyncClient(reconnection=False)
    await sio.connect(hub.http, namespaces=["/asr"], transports=["websocket"], wait_timeout=10)
    try:
        started: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        sio.on("session.started", lambda ev: started.done() or started.set_result(ev), namespace="/asr")
        ack = await sio.call("start", {"provider": "faster_whisper", "language": "de"}, namespace="/asr", timeout=30)
        assert ack["error"]["code"] == "invalid_command" and "language 'de'" in ack["error"]["message"], ack
        ack = await sio.call("start", {"language": "de", "task": "translate", "hotwords": ["Berlin"]},
                             namespace="/asr", timeout=30)
        assert ack.get("session_id"), ack
        ev = await asyncio.wait_for(started, 30)
        assert ev["provider"] == "whisper_multi" and ev["language"] == "de"
        await sio.emit("stop", namespace="/asr")
    finally:
        await sio.disconnect()


# -- routing by detected language (issue 23 item 2, issue 24 item 4; DESIGN §5) ---------------------------

def cer(ref: str, hyp: str) -> float:
    return float(jiwer.cer(chars(ref), chars(hyp)))


@pytest.fixture(scope="module")
def no_detect_hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HubProcess]:
    """The default config with `providers.detect: false` (today's routing kept)."""
    h = HubProcess(base_config(), tmp_path_factory.mktemp("nodetect"),
                   env={"ASRHUB_PROVIDERS__DETECT": "false"}).start(timeout=300)
    yield h
    h.stop()


def openai_client(hub: HubProcess) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=hub.http + "/v1", api_key="x", max_retries=0, timeout=300)


async def test_whisper_1_without_language_detects_it_as_openai_does(hub: HubProcess) -> None:
    """The official SDK, `whisper-1`, no `language`: Mandarin comes back in Mandarin (decoded by the
    multilingual model), English still on tiny.en."""
    zh, en = clip("zh_aishell_BAC009S0724W0121"), clip("en_libri_1221-135766")
    client = openai_client(hub)
    with (DATA / zh.file).open("rb") as f:
        raw = await client.audio.transcriptions.with_raw_response.create(model="whisper-1", file=f,
                                                                          response_format="verbose_json")
    res = raw.parse()
    assert raw.headers["x-asrhub-provider"] == "whisper_multi", res.text
    assert res.language in ("chinese", "zh"), res.language
    assert localise_text(res.text, "zh") == res.text and cer(zh.transcript, res.text) < 0.4, res.text
    with (DATA / en.file).open("rb") as f:
        raw = await client.audio.transcriptions.with_raw_response.create(model="whisper-1", file=f,
                                                                          response_format="verbose_json")
    res = raw.parse()
    assert raw.headers["x-asrhub-provider"] == "faster_whisper" and res.language == "english", res
    assert wer([en.transcript], [res.text]) < 0.2, res.text


async def test_whisper_1_stream_without_language_is_routed_by_its_speech(hub: HubProcess) -> None:
    zh = clip("zh_funasr_asr_example")
    client = openai_client(hub)
    with (DATA / zh.file).open("rb") as f:
        stream = await client.audio.transcriptions.create(model="whisper-1", file=f, stream=True)
        done = [ev async for ev in stream if ev.type == "transcript.text.done"]
    assert len(done) == 1 and has_han(done[0].text), done
    assert cer(zh.transcript, done[0].text) < 0.4, done[0].text


async def test_a_session_without_language_moves_to_the_route_of_its_language(hub: HubProcess) -> None:
    """Mandarin over WebSocket with no language: the session starts on tiny.en, the language ID says zh, it
    moves to the multilingual model (`provider.switched`), and every final is Mandarin with its language."""
    zh = clip("zh_aishell3_SSB06710128")
    events = await ws_stream(hub.ws, load_pcm16(DATA / zh.file).tobytes() + silence(1.0), chunk_bytes=3200,
                             realtime=2.0, timeout=300)
    started = events[0]
    assert started["provider"] == "faster_whisper" and started["language"] == "auto", started
    switched = [e for e in events if e["type"] == "provider.switched"]
    assert len(switched) == 1 and switched[0]["from"] == "faster_whisper" and switched[0]["to"] == "whisper_multi"
    assert switched[0]["reason"].startswith("language zh"), switched
    fs = finals(events)
    assert fs and all(f["provider"] == "whisper_multi" and f["language"] == "zh" for f in fs), fs
    assert all(0.5 <= f["language_probability"] <= 1 for f in fs), fs
    text = final_text(events)
    assert localise_text(text, "zh") == text and cer(zh.transcript, text) < 0.4, text
    ended = events[-1]
    assert ended["type"] == "session.ended" and ended["stats"]["language"] == "zh", ended
    before = events[:events.index(switched[0])]  # tiny.en's partials of Mandarin: nothing stable promised
    assert all(e["stable_text"] == "" for e in before if e["type"] == "transcript.partial"), before


async def test_english_without_language_stays_on_tiny_en(hub: HubProcess) -> None:
    en = clip("en_libri_1089-134691")
    events = await ws_stream(hub.ws, load_pcm16(DATA / en.file).tobytes() + silence(1.0), chunk_bytes=3200,
                             realtime=2.0, timeout=300)
    assert not [e for e in events if e["type"] == "provider.switched"], events
    fs = finals(events)
    assert fs and all(f["provider"] == "faster_whisper" and f["language"] == "en" for f in fs), fs
    assert all(f["language_probability"] >= 0.5 for f in fs), fs
    assert wer([en.transcript], [final_text(events)]) < 0.25, final_text(events)
    partials = [e for e in events if e["type"] == "transcript.partial"]
    assert partials and partials[0]["end_ms"] < 2000, partials[:1]  # partials flow before the language is known


async def test_auto_follows_the_language_at_the_next_utterance(hub: HubProcess) -> None:
    """English, a pause, then Mandarin, with `language: auto`: the English finals come from tiny.en, the
    Mandarin ones from the multilingual model after the session moved at the Mandarin utterance."""
    en, zh = clip("en_libri_1089-134691"), clip("zh_funasr_asr_example")
    first = load_pcm16(DATA / en.file).tobytes() + silence(3.0)
    pcm = first + load_pcm16(DATA / zh.file).tobytes() + silence(1.0)
    events = await ws_stream(hub.ws, pcm, start={"language": "auto"}, chunk_bytes=3200, realtime=2.0, timeout=300)
    assert events[0]["provider"] == "faster_whisper" and events[0]["language"] == "auto"
    boundary_ms = len(first) // 32
    fs = [f for f in finals(events) if f["text"]]
    english = [f for f in fs if f["end_ms"] <= boundary_ms + 300]
    chinese = [f for f in fs if f["start_ms"] >= boundary_ms - 3300]
    assert english and chinese, fs
    assert all(f["language"] == "en" and f["provider"] == "faster_whisper" for f in english), english
    assert all(f["language"] == "zh" and f["provider"] == "whisper_multi" for f in chinese), chinese
    assert "hour" in " ".join(f["text"] for f in english).lower()
    zh_text = "".join(f["text"] for f in chinese)
    assert has_han(zh_text) and localise_text(zh_text, "zh") == zh_text
    switched = [e for e in events if e["type"] == "provider.switched"]
    assert [(e["from"], e["to"]) for e in switched] == [("faster_whisper", "whisper_multi")], switched


async def test_realtime_without_language_is_routed_by_its_speech(hub: HubProcess) -> None:
    from openai.types.realtime import ConversationItemInputAudioTranscriptionCompletedEvent as Completed

    zh = clip("zh_aishell_BAC009S0724W0121")
    import soxr

    pcm = soxr.resample(load_pcm16(DATA / zh.file).astype(np.float32), 16000, 24000)  # the socket's 24 kHz
    pcm24 = np.clip(np.rint(pcm), -32768, 32767).astype("<i2").tobytes() + bytes(24000 * 2)  # + 1 s silence
    session = {"type": "transcription", "audio": {"input": {
        "format": {"type": "audio/pcm", "rate": 24000}, "transcription": {"model": "whisper-1"},
        "turn_detection": {"type": "server_vad", "silence_duration_ms": 500, "prefix_padding_ms": 300}}}}
    async with openai_client(hub).realtime.connect(extra_query={"intent": "transcription"}, model="whisper-1") as conn:
        await conn.recv()  # session.created
        await conn.session.update(session=session)  # type: ignore[arg-type]
        await conn.recv()  # session.updated
        for i in range(0, len(pcm24), 9600):
            await conn.input_audio_buffer.append(audio=base64.b64encode(pcm24[i:i + 9600]).decode())
        texts: list[str] = []
        async with asyncio.timeout(120):
            while not texts:
                ev = await conn.recv()
                assert ev.type != "error", ev
                if isinstance(ev, Completed):
                    texts.append(ev.transcript)
    assert has_han(texts[0]) and cer(zh.transcript, texts[0]) < 0.4, texts


async def test_without_detection_no_language_keeps_the_default_provider(no_detect_hub: HubProcess) -> None:
    zh = clip("zh_aishell_BAC009S0724W0121")
    events = await ws_stream(no_detect_hub.ws, load_pcm16(DATA / zh.file).tobytes() + silence(1.0),
                             chunk_bytes=3200, realtime=2.0, timeout=300)
    assert events[0]["provider"] == "faster_whisper" and events[0]["language"] == "en", events[0]
    assert not [e for e in events if e["type"] == "provider.switched"]
    fs = finals(events)
    assert all(f["provider"] == "faster_whisper" and "language_probability" not in f for f in fs), fs
    async with openai_client(no_detect_hub) as client:
        with (DATA / zh.file).open("rb") as f:
            raw = await client.audio.transcriptions.with_raw_response.create(model="whisper-1", file=f,
                                                                              response_format="verbose_json")
    assert raw.headers["x-asrhub-provider"] == "faster_whisper" and raw.parse().language == "english"


async def test_uploads_without_language_are_routed_by_their_speech(hub: HubProcess) -> None:
    """POST /v1/transcribe and gRPC Recognize with no language: Mandarin goes to the multilingual model and
    is labelled zh; noise has no language to route by and stays on the default provider."""
    zh = clip("zh_aishell3_SSB03410265")
    async with httpx.AsyncClient(base_url=hub.http, timeout=120) as client:
        r = await client.post("/v1/transcribe", files={"file": (zh.file, (DATA / zh.file).read_bytes())})
        assert r.status_code == 200 and r.json()["provider"] == "whisper_multi", r.text
        assert r.json()["language"] == "zh" and cer(zh.transcript, r.json()["text"]) < 0.4, r.text
    from asrhub.wire import grpc_gen
    pb, pb_grpc = grpc_gen.load()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{hub.grpc_port}") as ch:
        res = await pb_grpc.AsrHubStub(ch).Recognize(pb.RecognizeRequest(audio=(DATA / zh.file).read_bytes()),
                                                     timeout=120)
    assert res.provider == "whisper_multi" and res.language == "zh" and has_han(res.text), res
    hiss = np.random.default_rng(0).normal(0, 1000, 16000 * 3).astype("<i2")
    import io
    import wave
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(hiss.tobytes())
    async with openai_client(hub) as oai:
        raw = await oai.audio.transcriptions.with_raw_response.create(model="whisper-1",
                                                                      file=("hiss.wav", buf.getvalue()))
    assert raw.headers["x-asrhub-provider"] == "faster_whisper", raw.parse()
