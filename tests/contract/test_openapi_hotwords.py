"""/openapi.json states the limits the hub holds hotwords to (StartSession: at most 100, each 1-100 characters)
on the upload route too: POST /v1/transcribe's `hotwords` form field was a bare list of strings, so schemathesis
(run as a stranger runs it, `st run .../openapi.json --checks all`) sent an empty one, which the hub refuses
(400 "'hotwords.0': String should have at least 1 character"): a schema-valid request rejected. Real hub."""

from __future__ import annotations

from typing import Any

import httpx

from tests.support import HubProcess, clip


def _hotwords(schema: dict[str, Any]) -> dict[str, Any]:
    field = schema["properties"]["hotwords"]
    return next(s for s in field.get("anyOf", [field]) if s.get("type") == "array")


async def test_upload_hotwords_carry_the_start_limits(hub: HubProcess) -> None:
    async with httpx.AsyncClient(base_url=hub.http, timeout=120) as http:
        spec = (await http.get("/openapi.json")).json()
        start = spec["paths"]["/v1/sessions"]["post"]["requestBody"]["content"]["application/json"]["schema"]
        upload = spec["components"]["schemas"]["Body_transcribe_v1_transcribe_post"]
        assert _hotwords(upload) == {**_hotwords(start), **{k: v for k, v in _hotwords(upload).items()
                                                           if k in ("title", "description")}}
        assert _hotwords(upload)["items"] == {"type": "string", "minLength": 1, "maxLength": 100}
        assert _hotwords(upload)["maxItems"] == 100
        # what the schema allows is served; what it does not is refused naming the field
        audio = clip("en_jfk").path.read_bytes()
        ok = await http.post("/v1/transcribe", files={"file": ("a.flac", audio)}, data={"hotwords": ["country"]})
        assert ok.status_code == 200 and "country" in ok.json()["text"], ok.text
        bad = await http.post("/v1/transcribe", files={"file": ("a.flac", audio)}, data={"hotwords": [""]})
        assert bad.status_code == 400 and "hotwords" in bad.json()["error"]["message"], bad.text
