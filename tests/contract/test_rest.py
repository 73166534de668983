"""Issue 3: whole-file REST — the official `openai` client against the hub, the hub-native
/v1/transcribe, and the OpenAPI schema that documents both."""

from __future__ import annotations

import re

import httpx
import openai
import pytest

from tests.support import HubProcess, clip, wer

CLIP = clip("en_libri_1089-134691")  # 5.4 s, FLAC


@pytest.fixture(scope="module")
def oai(hub: HubProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=hub.http + "/v1", api_key="x", max_retries=0, timeout=120)


def _transcribe(oai: openai.OpenAI, response_format: str, **kw: object) -> object:
    with open(CLIP.path, "rb") as f:
        return oai.audio.transcriptions.create(file=f, model="whisper-1",  # type: ignore[call-overload]
                                               response_format=response_format, **kw)


def test_openai_json(oai: openai.OpenAI) -> None:
    res = _transcribe(oai, "json", language="en")
    assert wer([CLIP.transcript], [res.text]) < 0.2, res.text  # type: ignore[attr-defined]


def test_openai_text(oai: openai.OpenAI) -> None:
    res = _transcribe(oai, "text")
    assert isinstance(res, str)
    assert wer([CLIP.transcript], [res.strip()]) < 0.2, res


def test_openai_verbose_json_with_words(oai: openai.OpenAI) -> None:
    res = _transcribe(oai, "verbose_json", timestamp_granularities=["word", "segment"], temperature=0.0)
    assert res.language == "english" and abs(res.duration - CLIP.seconds) < 0.1  # type: ignore[attr-defined]
    assert wer([CLIP.transcript], [res.text]) < 0.2  # type: ignore[attr-defined]
    segs = res.segments  # type: ignore[attr-defined]
    assert segs and all(0 <= s.start < s.end <= CLIP.seconds + 0.1 for s in segs)
    words = res.words  # type: ignore[attr-defined]
    assert words and len(words) >= len(CLIP.transcript.split()) - 2
    assert all(0 <= w.start <= w.end <= CLIP.seconds + 0.1 for w in words)
    assert [w.start for w in words] == sorted(w.start for w in words)


def test_openai_verbose_json_without_words(oai: openai.OpenAI) -> None:
    res = _transcribe(oai, "verbose_json")
    assert res.segments and not getattr(res, "words", None)  # type: ignore[attr-defined]


@pytest.mark.parametrize("fmt", ["srt", "vtt"])
def test_openai_subtitles(oai: openai.OpenAI, fmt: str) -> None:
    res = _transcribe(oai, fmt)
    assert isinstance(res, str)
    sep = "," if fmt == "srt" else "."
    stamps = re.findall(rf"(\d\d:\d\d:\d\d{sep}\d\d\d) --> (\d\d:\d\d:\d\d{sep}\d\d\d)", res)
    assert stamps, res
    if fmt == "vtt":
        assert res.startswith("WEBVTT")
    else:
        assert res.startswith("1\n")
    text = " ".join(line for line in res.splitlines() if line and "-->" not in line and not line.isdigit()
                    and line != "WEBVTT")
    assert wer([CLIP.transcript], [text]) < 0.2, res


def test_openai_provider_name_and_unknown_model(oai: openai.OpenAI) -> None:
    with open(CLIP.path, "rb") as f:
        res = oai.audio.transcriptions.create(file=f, model="faster_whisper")
    assert wer([CLIP.transcript], [res.text]) < 0.2
    with pytest.raises(openai.NotFoundError) as exc, open(CLIP.path, "rb") as f:
        oai.audio.transcriptions.create(file=f, model="gpt-99-transcribe")
    assert exc.value.body["code"] == "unknown_provider"  # type: ignore[index]


def test_openai_bad_requests(hub: HubProcess, oai: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as exc:
        oai.audio.transcriptions.create(file=("x.wav", b"not audio at all"), model="whisper-1")
    assert exc.value.body["code"] == "invalid_audio"  # type: ignore[index]
    r = httpx.post(hub.http + "/v1/audio/transcriptions", data={"model": "whisper-1", "response_format": "xml"},
                   files={"file": ("a.flac", CLIP.path.read_bytes())}, timeout=60)
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_command"
    r = httpx.post(hub.http + "/v1/audio/transcriptions", data={"model": "whisper-1"}, timeout=60)
    assert r.status_code == 400 and "file" in r.json()["error"]["message"]


def test_native_transcribe(hub: HubProcess) -> None:
    r = httpx.post(hub.http + "/v1/transcribe", files={"file": (CLIP.file, CLIP.path.read_bytes())},
                   data={"language": "en"}, timeout=120)
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) == {"text", "segments", "words", "language", "duration_ms", "provider"}
    assert body["provider"] == "faster_whisper" and body["language"] == "en"
    assert abs(body["duration_ms"] - CLIP.seconds * 1000) < 100
    assert wer([CLIP.transcript], [body["text"]]) < 0.2
    assert body["words"] and {"word", "start_ms", "end_ms", "confidence"} <= set(body["words"][0])
    r = httpx.post(hub.http + "/v1/transcribe", files={"file": (CLIP.file, CLIP.path.read_bytes())},
                   data={"provider": "nope"}, timeout=60)
    assert r.status_code == 404 and r.json()["error"]["code"] == "unknown_provider"


def test_openapi_documents_every_route(hub: HubProcess) -> None:
    spec = httpx.get(hub.http + "/openapi.json", timeout=30).json()
    paths = spec["paths"]
    for path, method in [("/v1/audio/transcriptions", "post"), ("/v1/audio/translations", "post"),
                         ("/v1/models", "get"), ("/v1/models/{model_id}", "get"), ("/v1/transcribe", "post"), ("/v1/sessions", "post"),
                         ("/v1/sessions/{session_id}/events", "get"), ("/v1/sessions/{session_id}/audio", "post"),
                         ("/v1/sessions/{session_id}/flush", "post"), ("/v1/sessions/{session_id}/stop", "post"),
                         ("/v1/sessions/{session_id}", "delete")]:
        assert method in paths.get(path, {}), path
    form = paths["/v1/audio/transcriptions"]["post"]["requestBody"]["content"]["multipart/form-data"]["schema"]
    if "$ref" in form:
        form = spec["components"]["schemas"][form["$ref"].split("/")[-1]]
    assert {"file", "model", "language", "prompt", "response_format", "temperature", "stream", "include[]",
            "timestamp_granularities[]", "chunking_strategy"} <= set(form["properties"])
    start = paths["/v1/sessions"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert {"provider", "language", "audio", "interim_results", "word_timestamps", "vad", "resume"} <= set(
        start["properties"])
    assert "HubTranscription" in spec["components"]["schemas"]
