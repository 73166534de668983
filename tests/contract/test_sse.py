"""Issue 3: HTTP + SSE specifics — Last-Event-ID replay after a dropped reader, DELETE, the end of a
stream, and reaping of a session nobody reads."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.contract.clients import PCM16, SseClient
from tests.support import HubProcess, base_config, clip, final_text, load_pcm16, running, wer


async def _replay(hub: HubProcess, session_id: str, **params: Any) -> list[dict[str, Any]]:
    events = []
    async with httpx.AsyncClient(base_url=hub.http, timeout=30) as http, \
            http.stream("GET", f"/v1/sessions/{session_id}/events", params=params) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        async for line in r.aiter_lines():
            if line.startswith("data:"):
                events.append(json.loads(line[5:]))
    return events


async def _next_event(hub: HubProcess, session_id: str, after: int) -> dict[str, Any]:
    """The session's first event after seq `after`, once the hub has it: read by a second, short-lived
    reader (Last-Event-ID), which then goes away again."""
    async with httpx.AsyncClient(base_url=hub.http, timeout=30) as http, \
            http.stream("GET", f"/v1/sessions/{session_id}/events", headers={"Last-Event-ID": str(after)}) as r:
        assert r.status_code == 200
        async for line in r.aiter_lines():
            if line.startswith("data:"):
                return dict(json.loads(line[5:]))
    raise AssertionError(f"the session's events ended before one after seq {after}")


async def test_reconnect_with_last_event_id_gets_exactly_the_missed_events(hub: HubProcess) -> None:
    c = SseClient(hub)
    pcm = load_pcm16(clip("en_jfk").path).tobytes()
    half = len(pcm) // 2 // 1280 * 1280
    try:
        sid = await c.start({"audio": PCM16})
        assert sid
        await c.stream(pcm[:half], realtime=4.0)
        await c.wait_for(lambda e: e["type"] == "speech.started")
        await c.drop_events()  # the only reader goes away mid-stream: the session is detached, not ended
        first = list(c.events)
        await c.stream(pcm[half:3 * len(pcm) // 4 // 1280 * 1280], realtime=4.0)  # events pile up meanwhile
        await _next_event(hub, sid, after=first[-1]["seq"])  # at least one the dropped reader missed
        await c.open_events(last_event_id=c.last_id)
        await c.stream(pcm[3 * len(pcm) // 4 // 1280 * 1280:], realtime=4.0)
        await c.stop()
        await c.wait_ended(120)
        second = c.events[len(first):]
    finally:
        await c.close()
    assert second and second[0]["seq"] == first[-1]["seq"] + 1
    everything = await _replay(hub, sid)
    assert first + second == everything, "the reconnected reader did not get exactly the missed events"
    assert [e["seq"] for e in everything] == list(range(1, len(everything) + 1))
    assert everything[-1]["type"] == "session.ended" and everything[-1]["reason"] == "stop"
    assert wer([clip("en_jfk").transcript], [final_text(everything)]) < 0.25
    # ?last_event_id= does what the header does (a new EventSource cannot set headers)
    tail = await _replay(hub, sid, last_event_id=3)
    assert tail == everything[3:]
    # a reader that is up to date on an ended session is told not to reconnect
    async with httpx.AsyncClient(base_url=hub.http, timeout=30) as http:
        r = await http.get(f"/v1/sessions/{sid}/events", headers={"Last-Event-ID": str(len(everything))})
        assert r.status_code == 204
        r = await http.get(f"/v1/sessions/{sid}/events", headers={"Last-Event-ID": "banana"})
        assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_command"


async def test_delete_aborts_without_finalising(hub: HubProcess) -> None:
    c = SseClient(hub)
    try:
        sid = await c.start({"audio": PCM16})
        await c.send_audio(load_pcm16(clip("en_jfk").path).tobytes()[:64000])
        r = await c.http.delete(f"/v1/sessions/{sid}")
        assert r.status_code == 204
        events = await c.wait_ended(30)
        assert events[-1]["reason"] == "client_gone"
        assert not [e for e in events if e["type"] == "transcript.final"]
        # deleted: gone for every later request (its own reader above still got session.ended)
        r = await c.http.post(f"/v1/sessions/{sid}/audio", content=b"\x00\x00")
        assert r.status_code == 404 and r.json()["error"]["code"] == "session_not_found", r.text
        r = await c.http.get(f"/v1/sessions/{sid}/events")
        assert r.status_code == 404 and r.json()["error"]["code"] == "session_not_found", r.text
        assert (await c.http.delete(f"/v1/sessions/{sid}")).status_code == 404
        r = await c.http.delete("/v1/sessions/0123")
        assert r.status_code == 404 and r.json()["error"] == {"code": "session_not_found",
                                                              "message": r.json()["error"]["message"]}
        r = await c.http.get("/v1/sessions/0123/events")
        assert r.status_code == 404 and r.json()["error"]["code"] == "session_not_found"
    finally:
        await c.close()


async def test_create_answers_urls_and_201(hub: HubProcess) -> None:
    async with httpx.AsyncClient(base_url=hub.http, timeout=30) as http:
        r = await http.post("/v1/sessions", json={"audio": PCM16, "interim_results": False})
        assert r.status_code == 201, r.text
        info = r.json()
        assert set(info) == {"session_id", "events_url", "audio_url"}
        assert info["events_url"].endswith(f"/v1/sessions/{info['session_id']}/events")
        assert info["audio_url"].endswith(f"/v1/sessions/{info['session_id']}/audio")
        r = await http.post("/v1/sessions", json={"resume": {"session_id": info["session_id"], "last_seq": 0}})
        assert r.status_code == 200 and r.json()["session_id"] == info["session_id"]
        assert (await http.delete(f"/v1/sessions/{info['session_id']}")).status_code == 204


@pytest.fixture(scope="module")
def quick_idle_hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HubProcess]:
    text = base_config() + "\nlimits:\n  idle_timeout_s: 1.5\n  resume_window_s: 10\n"
    yield from running(text, Path(tmp_path_factory.mktemp("idlehub")))


def test_session_without_reader_is_reaped_when_idle(quick_idle_hub: HubProcess) -> None:
    http = quick_idle_hub.http
    sid = httpx.post(http + "/v1/sessions", json={"audio": PCM16}, timeout=30).json()["session_id"]
    assert httpx.post(f"{http}/v1/sessions/{sid}/audio", content=b"\x00\x00" * 1600, timeout=30).status_code == 202
    last_audio = time.monotonic()
    # the stream ends with the session: reading it to its end waits for the reaper (no sleeping)
    with httpx.Client(timeout=30) as c, c.stream("GET", f"{http}/v1/sessions/{sid}/events") as resp:
        assert resp.status_code == 200
        events = [json.loads(line[5:]) for line in resp.iter_lines() if line.startswith("data:")]
    assert events[-1]["type"] == "session.ended" and events[-1]["reason"] == "idle"
    assert time.monotonic() - last_audio >= 1.4  # idle_timeout_s 1.5 after the last audio, not before
    r = httpx.post(f"{http}/v1/sessions/{sid}/audio", content=b"\x00\x00" * 1600, timeout=30)
    assert r.status_code == 409 and "ended" in r.json()["error"]["message"], r.text
