"""Issue 24: tenant isolation. With two API keys, a session is reachable only with credentials of its own
key, on every wire (WebSocket, Socket.IO, gRPC, HTTP+SSE) and for every operation (resume, events,
audio, flush, stop, keepalive, delete), short-lived tokens included. Another key's call gets exactly
the answer an unknown session gets, so it does not even learn that the session exists; the session
itself goes on undisturbed for its own client."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import grpc
import httpx
import pytest
import socketio
import websockets

from tests.contract.clients import PCM16
from tests.support import HubProcess, clip, keyed_config, load_pcm16, running, wer

ALPHA, BETA = "alpha-tenant-key-1", "beta-tenant-key-2"
UNKNOWN = "f" * 32
CLIP = clip("en_libri_1221-135766")


@pytest.fixture(scope="module")
def two_keys(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HubProcess]:
    cfg = keyed_config({"key": ALPHA, "name": "alpha"}, {"key": BETA, "name": "beta"})
    yield from running(cfg, tmp_path_factory.mktemp("tenants"))


def token_of(hub: HubProcess, key: str) -> str:
    r = httpx.post(hub.http + "/v1/tokens", headers={"Authorization": f"Bearer {key}"}, timeout=10)
    assert r.status_code == 200, r.text
    return str(r.json()["token"])


class AlphaSession:
    """Key alpha's live session over WebSocket: its client stays connected, collecting its events."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.events: list[dict[str, Any]] = []
        self.session_id = ""

    async def read(self) -> None:
        async for msg in self.ws:
            self.events.append(json.loads(msg))


@pytest.fixture
async def alpha(two_keys: HubProcess) -> AsyncIterator[AlphaSession]:
    async with websockets.connect(f"{two_keys.ws}?token={ALPHA}", max_size=None) as ws:
        await ws.send(json.dumps({"type": "start", "audio": PCM16}))
        started = json.loads(await ws.recv())
        assert started["type"] == "session.started", started
        session = AlphaSession(ws)
        session.session_id = started["session_id"]
        session.events.append(started)
        pcm = load_pcm16(CLIP.path).tobytes()
        await ws.send(pcm[: len(pcm) // 2])  # speech: the session has events worth stealing
        reader = asyncio.create_task(session.read())
        yield session
        await ws.send(pcm[len(pcm) // 2:])
        await ws.send(json.dumps({"type": "stop"}))
        await asyncio.wait_for(reader, 60)


def same_answer(foreign: dict[str, Any], unknown: dict[str, Any], sid: str) -> None:
    """The answer on the foreign session is the unknown session's, word for word (ids aside)."""
    assert json.loads(json.dumps(foreign).replace(sid, UNKNOWN)) == unknown, (foreign, unknown)
    assert unknown.get("code", unknown.get("error", {}).get("code")) == "session_not_found", unknown


async def ws_resume(hub: HubProcess, cred: str, sid: str) -> dict[str, Any]:
    async with websockets.connect(f"{hub.ws}?token={cred}", max_size=None) as ws:
        await ws.send(json.dumps({"type": "start", "resume": {"session_id": sid, "last_seq": 0}}))
        answer = json.loads(await ws.recv())
    return {k: answer[k] for k in ("type", "session_id", "seq", "code", "message", "fatal")}


async def sio_resume(hub: HubProcess, cred: str, sid: str) -> dict[str, Any]:
    c = socketio.AsyncClient(reconnection=False)
    await c.connect(hub.http, namespaces=["/asr"], transports=["websocket"], auth={"token": cred}, wait_timeout=10)
    try:
        ack = await c.call("start", {"resume": {"session_id": sid, "last_seq": 0}}, namespace="/asr", timeout=10)
    finally:
        await c.disconnect()
    return dict(ack)


async def grpc_resume(hub: HubProcess, cred: str, sid: str) -> list[dict[str, Any]]:
    from asrhub.wire import grpc_gen
    pb, pb_grpc = grpc_gen.load()
    start = pb.StreamingRequest(start=pb.StartSession(resume=pb.Resume(session_id=sid, last_seq=0)))
    async with grpc.aio.insecure_channel(f"127.0.0.1:{hub.grpc_port}") as ch:
        call = pb_grpc.AsrHubStub(ch).StreamingRecognize(iter([start]), timeout=20,
                                                         metadata=(("authorization", f"Bearer {cred}"),))
        return [{"type": ev.type, "session_id": ev.session_id, "code": ev.error.code, "message": ev.error.message}
                async for ev in call]


async def sse_calls(http: httpx.AsyncClient, cred: str, sid: str) -> dict[str, dict[str, Any]]:
    """Every HTTP+SSE operation on `sid` with `cred`: {operation: {status, body}}."""
    h = {"Authorization": f"Bearer {cred}"}
    out: dict[str, dict[str, Any]] = {}

    async def record(name: str, r: httpx.Response) -> None:
        # the answer as bytes and headers (date aside): nothing in it may tell the two apart
        out[name] = {"status": r.status_code, "body": r.json() if r.content else None, "raw": r.text,
                     "headers": sorted((k, v) for k, v in r.headers.items() if k != "date")}

    await record("resume", await http.post("/v1/sessions", headers=h,
                                           json={"resume": {"session_id": sid, "last_seq": 0}}))
    await record("events", await http.get(f"/v1/sessions/{sid}/events?token={cred}"))
    head = await http.head(f"/v1/sessions/{sid}/events", headers=h)
    out["events (HEAD)"] = {"status": head.status_code}
    await record("audio", await http.post(f"/v1/sessions/{sid}/audio", headers=h, content=b"\0" * 3200))
    for command in ("flush", "keepalive", "stop"):
        await record(command, await http.post(f"/v1/sessions/{sid}/{command}", headers=h))
    await record("delete", await http.delete(f"/v1/sessions/{sid}", headers=h))
    return out


async def test_another_keys_credentials_reach_no_session_on_any_wire(
        two_keys: HubProcess, alpha: AlphaSession) -> None:
    sid = alpha.session_id
    beta_token = token_of(two_keys, BETA)
    async with httpx.AsyncClient(base_url=two_keys.http, timeout=30) as http:
        for cred in (BETA, beta_token):  # the other key itself, and a start-only token it minted
            same_answer(await ws_resume(two_keys, cred, sid), await ws_resume(two_keys, cred, UNKNOWN), sid)
            same_answer(await sio_resume(two_keys, cred, sid), await sio_resume(two_keys, cred, UNKNOWN), sid)
            foreign, unknown = await grpc_resume(two_keys, cred, sid), await grpc_resume(two_keys, cred, UNKNOWN)
            assert len(foreign) == 1 and foreign[0]["type"] == "error", foreign
            same_answer(foreign[0], unknown[0], sid)
            foreign_sse, unknown_sse = await sse_calls(http, cred, sid), await sse_calls(http, cred, UNKNOWN)
            for op, answer in foreign_sse.items():
                assert answer["status"] == 404, (op, answer)
                if "body" in answer:
                    same_answer(answer["body"], unknown_sse[op]["body"], sid)
                    assert answer["body"]["error"]["code"] == "session_not_found"
                    assert answer["raw"].replace(sid, UNKNOWN) == unknown_sse[op]["raw"], (op, answer)
                    assert answer["headers"] == unknown_sse[op]["headers"], (op, answer)

        # its own key, and a token of its own key, still reach it
        own = await http.post(f"/v1/sessions/{sid}/keepalive", headers={"Authorization": f"Bearer {ALPHA}"})
        assert own.status_code == 202, own.text
        own = await http.post(f"/v1/sessions/{sid}/keepalive",
                              headers={"Authorization": f"Bearer {token_of(two_keys, ALPHA)}"})
        assert own.status_code == 202, own.text
    assert not [e for e in alpha.events if e["type"] in ("error", "session.ended")], alpha.events


async def test_the_owner_is_undisturbed_by_another_keys_attempts(two_keys: HubProcess) -> None:
    """After beta's stop, delete and resume attempts, alpha's session ends only when alpha stops it, with
    every word: nothing was stopped, aborted or taken over."""
    events: list[dict[str, Any]] = []
    pcm = load_pcm16(CLIP.path).tobytes()
    async with websockets.connect(f"{two_keys.ws}?token={ALPHA}", max_size=None) as ws, \
            httpx.AsyncClient(base_url=two_keys.http, timeout=30) as http:
        await ws.send(json.dumps({"type": "start", "audio": PCM16}))
        started = json.loads(await ws.recv())
        sid = started["session_id"]
        await ws.send(pcm[: len(pcm) // 2])
        await sse_calls(http, token_of(two_keys, BETA), sid)
        await sse_calls(http, BETA, sid)
        await ws_resume(two_keys, BETA, sid)
        await ws.send(pcm[len(pcm) // 2:])
        await ws.send(json.dumps({"type": "stop"}))
        async for msg in ws:
            events.append(json.loads(msg))
    assert events[-1]["type"] == "session.ended" and events[-1]["reason"] == "stop", events[-3:]
    assert not [e for e in events if e["type"] == "error"], events
    text = " ".join(e["text"] for e in events if e["type"] == "transcript.final")
    assert wer([CLIP.transcript], [text]) < 0.25, text
