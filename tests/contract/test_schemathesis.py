"""Issue 24 item 7: /openapi.json tells the truth. schemathesis (its CLI, as a stranger runs it) with every
check over every operation, against a real hub with an API key (so the auth checks run too); then the
specific promises one by one: `Allow` on a 405, 409 for a session's state, 404 for a provider that cannot
run here, and /docs with no request leaving the machine."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support import HubProcess, clip, keyed_config, running

KEY = "schemathesis-key"
CONFIG = Path(__file__).with_name("schemathesis.toml")
ST = Path(sys.executable).with_name("st")
#: a provider the default config lists that cannot run here (no FunASR `url` and no local `model`)
NOT_RUNNABLE = "funasr"


@pytest.fixture(scope="module")
def keyed_hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HubProcess]:
    cfg = keyed_config({"key": KEY, "name": "st"})
    yield from running(cfg, tmp_path_factory.mktemp("schemathesis"))


def _auth() -> dict[str, str]:
    return {"Authorization": f"Bearer {KEY}"}


def test_schemathesis_every_check_passes(keyed_hub: HubProcess, tmp_path: Path) -> None:
    operations = sum(len(item) for item in httpx.get(f"{keyed_hub.http}/openapi.json", timeout=30).json()["paths"]
                     .values())
    # deterministic (no random seed, no example database) and bounded: 20 cases per operation and phase, one worker (~30 s)
    cmd = [str(ST), "--config-file", str(CONFIG), "run", f"{keyed_hub.http}/openapi.json", "--checks", "all",
           "--header", f"Authorization: Bearer {KEY}", "--generation-deterministic", "--max-examples", "20",
           "--workers", "1", "--request-timeout", "30", "--no-color",
           "--report", "junit", "--report-dir", str(tmp_path)]
    run = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    out = run.stdout + run.stderr
    assert run.returncode == 0, out[-30000:]
    tested = re.search(r"Tested:\s+(\d+)", out)
    assert tested is not None and int(tested.group(1)) == operations, out[-5000:]
    suites = ET.parse(next(tmp_path.glob("junit-*.xml"))).getroot()
    assert (suites.get("failures"), suites.get("errors")) == ("0", "0"), out[-30000:]
    assert int(suites.get("tests") or 0) >= operations  # one per operation, plus the stateful scenarios


async def test_405_allow_lists_the_routes_methods(keyed_hub: HubProcess) -> None:
    cases = [("PUT", "/v1/sessions", "POST"), ("OPTIONS", "/v1/sessions/abc", "DELETE"),
             ("GET", "/v1/sessions/abc/flush", "POST"), ("POST", "/v1/sessions/abc/events", "GET, HEAD"),
             ("GET", "/v1/tokens", "POST"), ("DELETE", "/v1/models", "GET, HEAD"),
             ("PATCH", "/v1/audio/transcriptions", "POST"), ("POST", "/healthz", "GET, HEAD")]
    async with httpx.AsyncClient(base_url=keyed_hub.http, headers=_auth(), timeout=30) as http:
        for method, path, allow in cases:
            r = await http.request(method, path)
            assert r.status_code == 405, (method, path, r.status_code, r.text)
            assert r.headers["allow"] == allow, (method, path, r.headers.get("allow"))
            assert r.json()["error"]["code"] == "method_not_allowed", r.text


async def test_a_sessions_state_is_a_409_and_a_deleted_one_404(keyed_hub: HubProcess) -> None:
    async with httpx.AsyncClient(base_url=keyed_hub.http, headers=_auth(), timeout=30) as http:
        sid = (await http.post("/v1/sessions", json={})).json()["session_id"]
        assert (await http.post(f"/v1/sessions/{sid}/stop")).status_code == 202
        async with http.stream("GET", f"/v1/sessions/{sid}/events") as events:  # until the session has ended
            async for line in events.aiter_lines():
                if line.startswith("event: session.ended") or ('"type": "session.ended"' in line
                                                                or '"type":"session.ended"' in line):
                    break
        for command in ("keepalive", "flush", "audio"):  # ended: a conflict
            r = await http.post(f"/v1/sessions/{sid}/{command}", content=b"\x00\x00")
            assert r.status_code == 409, (command, r.text)
            err = r.json()["error"]
            assert err["code"] == "invalid_command" and re.search("ended", err["message"]), err
        r = await http.post(f"/v1/sessions/{sid}/stop")  # a stop after the end: session.ended was its answer
        assert r.status_code == 202, r.text
        r = await http.get(f"/v1/sessions/{sid}/events", headers={"Last-Event-ID": "999999"})
        assert r.status_code == 409 and "cannot resume from seq 999999" in r.json()["error"]["message"], r.text
        r = await http.get(f"/v1/sessions/{sid}/events", headers={"Last-Event-ID": "-1"})  # malformed: 400
        assert r.status_code == 400 and "Last-Event-ID" in r.json()["error"]["message"], r.text
        # DELETE: the session is gone for every later request
        assert (await http.delete(f"/v1/sessions/{sid}")).status_code == 204
        for method, path in (("GET", "events"), ("POST", "keepalive"), ("POST", "audio"), ("DELETE", "")):
            r = await http.request(method, f"/v1/sessions/{sid}/{path}".rstrip("/"))
            assert r.status_code == 404 and r.json()["error"]["code"] == "session_not_found", (method, path, r.text)


async def test_an_api_keys_own_session_limit_is_429(tmp_path: Path) -> None:
    cfg = keyed_config({"key": KEY, "name": "st", "max_sessions": 1})
    hub = HubProcess(cfg, tmp_path).start()
    try:
        async with httpx.AsyncClient(base_url=hub.http, headers=_auth(), timeout=30) as http:
            assert (await http.post("/v1/sessions", json={})).status_code == 201
            r = await http.post("/v1/sessions", json={})
            assert r.status_code == 429 and r.headers["retry-after"], r.text
            assert r.json()["error"]["code"] == "too_many_sessions", r.text
    finally:
        hub.stop()


async def test_a_provider_that_cannot_run_here_is_404_not_503(keyed_hub: HubProcess) -> None:
    async with httpx.AsyncClient(base_url=keyed_hub.http, headers=_auth(), timeout=30) as http:
        rows = {p["name"]: p for p in (await http.get("/v1/providers")).json()}
        assert rows[NOT_RUNNABLE]["status"] == "unavailable", rows[NOT_RUNNABLE]
        r = await http.post("/v1/sessions", json={"provider": NOT_RUNNABLE})
        assert r.status_code == 404, r.text
        err = r.json()["error"]
        assert err["code"] == "unknown_provider" and rows[NOT_RUNNABLE]["reason"] in err["message"], err
        r = await http.post("/v1/audio/transcriptions", data={"model": NOT_RUNNABLE},
                            files={"file": ("a.wav", b"RIFF", "audio/wav")})
        assert r.status_code == 404 and r.json()["error"]["param"] == "model", r.text


def _schema(hub: HubProcess) -> dict[str, Any]:
    return httpx.get(f"{hub.http}/openapi.json", timeout=30).json()  # type: ignore[no-any-return]


def test_schema_documents_errors_auth_and_event_stream(keyed_hub: HubProcess) -> None:
    doc = _schema(keyed_hub)
    assert doc["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    for path, item in doc["paths"].items():
        for method, op in item.items():
            responses = op["responses"]
            assert "422" not in responses, (method, path)  # validation failures are 400 invalid_command
            wanted = {"431", "500"} | ({"401", "429"} if path.startswith("/v1/") else set())
            assert wanted <= set(responses), (method, path, sorted(responses))
            for status, response in responses.items():
                if int(status) >= 400 and path != "/readyz":  # /readyz: 503 is its Readiness answer
                    body = response["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[-1]
                    assert body == ("OpenAIErrorBody" if path.startswith(("/v1/audio/", "/v1/models")) else
                                    "ErrorBody"), (method, path, status)
    events = doc["paths"]["/v1/sessions/{session_id}/events"]["get"]["responses"]
    assert list(events["200"]["content"]) == ["text/event-stream"]
    assert "content" not in events["204"]
    for command in ("flush", "stop", "keepalive", "audio"):
        ok = doc["paths"][f"/v1/sessions/{{session_id}}/{command}"]["post"]["responses"]["202"]
        assert "content" not in ok, command  # 202 with no body, as answered
    assert "409" in doc["paths"]["/v1/sessions/{session_id}/keepalive"]["post"]["responses"]
    ready = doc["paths"]["/readyz"]["get"]["responses"]["503"]["content"]["application/json"]["schema"]
    assert ready["$ref"].endswith("/Readiness")


async def test_real_uploads_answer_a_documented_content_type(keyed_hub: HubProcess) -> None:
    """What fuzzing cannot reach (it has no speech): each response format of a real transcription and
    translation comes back in a content type the schema documents for that route's 200."""
    doc = _schema(keyed_hub)
    audio = clip("en_libri_1089-134691").path.read_bytes()  # 5.4 s of English
    asks = [("/v1/audio/transcriptions", {"model": "whisper-1", "response_format": fmt})
            for fmt in ("json", "verbose_json", "text", "srt", "vtt")]
    asks += [("/v1/audio/transcriptions", {"model": "whisper-1", "stream": "true"}),
             ("/v1/audio/translations", {"model": "whisper-1", "response_format": "text"}),
             ("/v1/transcribe", {})]
    async with httpx.AsyncClient(base_url=keyed_hub.http, headers=_auth(), timeout=120) as http:
        for path, form in asks:
            r = await http.post(path, data=form, files={"file": ("a.flac", audio, "audio/flac")})
            assert r.status_code == 200, (path, form, r.text)
            media = r.headers["content-type"].split(";")[0]
            assert media in doc["paths"][path]["post"]["responses"]["200"]["content"], (path, form, media)
            if media == "text/event-stream":
                data = [json.loads(line[5:]) for line in r.text.splitlines() if line.startswith("data:")]
                assert data and data[-1]["type"] == "transcript.text.done", data


def test_docs_load_with_no_request_leaving_the_machine(keyed_hub: HubProcess) -> None:
    from playwright.sync_api import sync_playwright

    from tests.e2e.browser import CHROMIUM

    html = httpx.get(f"{keyed_hub.http}/docs", timeout=30).text
    urls = re.findall(r"""(?:src|href)=["']([^"']+)""", html)
    assert urls and all(u.startswith("/") and not u.startswith("//") for u in urls), urls
    requested: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        try:
            page = browser.new_page()
            page.on("request", lambda req: requested.append(req.url))
            page.goto(f"{keyed_hub.http}/docs")
            page.wait_for_selector(".opblock-summary-path", timeout=30_000)  # operations rendered
            shown = page.locator(".opblock-summary-path").all_inner_texts()
        finally:
            browser.close()
    assert "/v1/sessions" in [s.replace("\u200b", "") for s in shown], shown
    outside = [u for u in requested if not u.startswith(keyed_hub.http) and not u.startswith("data:")]
    assert not outside, outside
    assert json.loads(httpx.get(f"{keyed_hub.http}/openapi.json", timeout=30).text)["info"]["title"] == "ASR Hub"
