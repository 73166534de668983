"""Issue 24: the OpenAI audio routes refuse what they do not read, and every refusal of a request field
names it in `param` — with the official `openai` client where it can send the case, raw multipart where
only a hostile client would."""

from __future__ import annotations

from typing import Any

import httpx
import openai
import pytest

from tests.support import HubProcess, clip

SHORT = clip("en_libri_1089-134691")


def post(hub: HubProcess, route: str, data: dict[str, Any], file: bytes | None = None) -> dict[str, Any]:
    r = httpx.post(f"{hub.http}/v1/audio/{route}", data=data, timeout=120,
                   files={"file": ("a.flac", SHORT.path.read_bytes() if file is None else file)})
    assert r.status_code in (400, 404, 413), r.text
    return r.json()["error"]  # type: ignore[no-any-return]


def test_translations_refuse_language_and_unknown_fields(hub: HubProcess) -> None:
    oai = openai.OpenAI(base_url=hub.http + "/v1", api_key="x", max_retries=0, timeout=120)
    with pytest.raises(openai.BadRequestError) as exc, open(SHORT.path, "rb") as f:
        # OpenAI's translations take no language (the answer is always English): refused, not ignored
        oai.audio.translations.create(file=f, model="whisper-1", extra_body={"language": "en"})
    body: Any = exc.value.body
    assert body["param"] == "language" and body["code"] == "invalid_command", body
    assert "English" in body["message"], body
    err = post(hub, "translations", {"model": "whisper-1", "speaker": "ann"})
    assert err["param"] == "speaker" and err["code"] == "invalid_command", err
    for field in ("timestamp_granularities[]", "stream", "include[]", "chunking_strategy"):
        err = post(hub, "translations", {field: "x"})  # transcription-only fields
        assert err["param"] == field, err


@pytest.mark.parametrize(("data", "param"), [
    ({"language": "en-"}, "language"),               # malformed BCP-47 tags
    ({"language": "123"}, "language"),
    ({"language": "e"}, "language"),
    ({"language": "english-x"}, "language"),
    ({"language": "zz-ZZ"}, "language"),              # well-formed, but no model speaks it
    ({"language": "xx"}, "language"),
    ({"languages[]": "e"}, "languages[]"),            # OpenAI's newer hint list
    ({"languages[]": ["en", "12"]}, "languages[]"),
    ({"languages[]": "de", "model": "faster_whisper"}, "languages[]"),  # one the model cannot do
    ({"language": "de", "model": "faster_whisper"}, "language"),
    ({"prompt": "x" * 100_000}, "prompt"),
    ({"keywords[]": "x" * 100_000}, "keywords[]"),   # made into the prompt: still the field sent
    ({"temperature": "5"}, "temperature"),
    ({"response_format": "bogus"}, "response_format"),
    ({"timestamp_granularities[]": "x"}, "timestamp_granularities[]"),
    ({"include[]": "x"}, "include[]"),
    ({"stream": "maybe"}, "stream"),
    ({"chunking_strategy[type]": "server_vad", "chunking_strategy[silence_duration_ms]": "abc"},
     "chunking_strategy[silence_duration_ms]"),
    ({"model": "gpt-99"}, "model"),
    ({"speaker": "ann"}, "speaker"),
])
def test_every_transcription_refusal_names_its_field(hub: HubProcess, data: dict[str, Any], param: str) -> None:
    err = post(hub, "transcriptions", data)
    assert err["param"] == param, err
    assert err["type"] in ("invalid_request_error", "not_found_error"), err


@pytest.mark.parametrize("route", ["transcriptions", "translations"])
@pytest.mark.parametrize("content", [b"", b"\x00garbage" * 500])
def test_a_bad_file_is_the_file_param(hub: HubProcess, route: str, content: bytes) -> None:
    err = post(hub, route, {}, file=content)
    assert err["param"] == "file" and err["code"] == "invalid_audio", err
