"""Issue 15 item 5: short-lived tokens (POST /v1/tokens) on every transport of a real keyed hub.

A token starts sessions for the key that asked for it (with that key's quotas), until it expires, and
does nothing else. Expired, forged, malformed and wrong-scope tokens are refused with `unauthorized`
and a message naming why. The hub's token secret is set in its config, so this test can also mint
tokens the hub would have minted at another time (expired ones) without sleeping."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from typing import Any

import grpc
import httpx
import pytest
import socketio
import websockets

from asrhub.core.tokens import TokenSigner
from tests.contract.clients import PCM16
from tests.support import HubProcess, clip, keyed_config, load_pcm16, running, wer

ALPHA, BETA = "alpha-key-123", "beta-key-456"
SECRET = "test-token-secret-0123456789"
TTL_MAX = 600
CLIP = clip("en_libri_1221-135766")  # 4.8 s


@pytest.fixture(scope="module")
def keyed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HubProcess]:
    cfg = keyed_config({"key": ALPHA, "name": "alpha", "max_sessions": 1}, {"key": BETA, "name": "beta"},
                       token_secret=SECRET, token_ttl_max_s=TTL_MAX)
    yield from running(cfg, tmp_path_factory.mktemp("tokens"))


def token_for(hub: HubProcess, key: str, **body: Any) -> dict[str, Any]:
    r = httpx.post(hub.http + "/v1/tokens", json=body or None, headers={"Authorization": f"Bearer {key}"})
    assert r.status_code == 200, r.text
    assert r.headers["cache-control"] == "no-store"
    return r.json()  # type: ignore[no-any-return]


def minted(key: str, name: str, *, expires_in: int, secret: str = SECRET) -> str:
    """A token as the hub (with this secret) would mint it; negative expires_in = already expired."""
    signer = TokenSigner(secret)
    return signer.issue(name, key, ttl_s=60, now=time.time() + expires_in - 60)[0]


def refused(r: httpx.Response, *words: str) -> str:
    assert r.status_code == 401, r.text
    err = r.json()["error"]
    assert err["code"] == "unauthorized"
    for w in words:
        assert w in err["message"], err["message"]
    return str(err["message"])


async def ws_session(hub: HubProcess, token: str, pcm: bytes = b"") -> list[dict[str, Any]]:
    """Start a session on /v1/ws?token=..., send pcm, stop; every event until the hub closes."""
    events: list[dict[str, Any]] = []
    async with websockets.connect(f"{hub.ws}?token={token}", max_size=None) as ws:
        await ws.send(json.dumps({"type": "start", "audio": PCM16}))
        for i in range(0, len(pcm), 32000):
            await ws.send(pcm[i:i + 32000])
        await ws.send(json.dumps({"type": "stop"}))
        async for msg in ws:
            events.append(json.loads(msg))
    return events


# -- issuing ------------------------------------------------------------------------------------------
def test_issue_bounds_and_body(keyed: HubProcess) -> None:
    before = time.time()
    t = token_for(keyed, ALPHA, ttl_s=30)
    assert t["token"].startswith("ast1.") and ALPHA not in t["token"]
    assert before + 29 <= t["expires_at"] <= time.time() + 31
    default = token_for(keyed, ALPHA)  # empty body: the default ttl (60 s)
    assert default["expires_at"] - time.time() == pytest.approx(60, abs=2)
    url, auth = keyed.http + "/v1/tokens", {"Authorization": f"Bearer {ALPHA}"}
    r = httpx.post(url, json={"ttl_s": TTL_MAX + 1}, headers=auth)
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_command"
    assert "token_ttl_max_s" in r.json()["error"]["message"] and str(TTL_MAX) in r.json()["error"]["message"]
    for bad in ({"ttl_s": 0}, {"ttl": 5}, [1]):
        r = httpx.post(url, json=bad, headers=auth)
        assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_command", (bad, r.text)
    refused(httpx.post(url, json={"ttl_s": 5}), "API key is required")
    refused(httpx.post(url, json={"ttl_s": 5}, headers={"Authorization": "Bearer nope"}), "not valid")


def test_token_cannot_mint_tokens_transcribe_or_read_admin_routes(keyed: HubProcess) -> None:
    tok = token_for(keyed, ALPHA)["token"]
    h = {"Authorization": f"Bearer {tok}"}
    refused(httpx.post(keyed.http + "/v1/tokens", json={}, headers=h), "only starts sessions", "POST /v1/tokens")
    with open(CLIP.path, "rb") as f:
        r = httpx.post(keyed.http + "/v1/audio/transcriptions", files={"file": f}, data={"model": "whisper-1"},
                       headers=h)
    assert r.status_code == 401 and "only starts sessions" in r.text, r.text
    refused(httpx.get(keyed.http + "/v1/providers", headers=h), "only starts sessions", "GET /v1/providers")
    refused(httpx.get(keyed.http + f"/v1/providers?token={tok}"), "only starts sessions")
    # the key itself still reads them
    assert httpx.get(keyed.http + "/v1/providers", headers={"Authorization": f"Bearer {ALPHA}"}).status_code == 200


# -- WebSocket ------------------------------------------------------------------------------------------
async def test_websocket_token_streams_real_speech(keyed: HubProcess) -> None:
    tok = token_for(keyed, BETA, ttl_s=60)["token"]
    events = await ws_session(keyed, tok, load_pcm16(CLIP.path).tobytes())
    assert events[0]["type"] == "session.started" and events[-1]["type"] == "session.ended"
    text = " ".join(e["text"] for e in events if e["type"] == "transcript.final")
    assert wer([CLIP.transcript], [text]) < 0.25, text


async def ws_refusal(hub: HubProcess, token: str) -> dict[str, Any]:
    async with websockets.connect(f"{hub.ws}?token={token}") as ws:
        ev = json.loads(await ws.recv())
        with pytest.raises(websockets.ConnectionClosed):
            await ws.recv()
    assert ev["type"] == "error" and ev["code"] == "unauthorized" and ev["fatal"], ev
    return ev


async def test_websocket_refuses_expired_forged_malformed_and_orphaned_tokens(keyed: HubProcess) -> None:
    ev = await ws_refusal(keyed, minted(ALPHA, "alpha", expires_in=-5))
    assert "expired" in ev["message"] and "POST /v1/tokens" in ev["message"]
    ev = await ws_refusal(keyed, minted(ALPHA, "alpha", expires_in=60, secret="another-hub-secret-9876543"))
    assert "signature is not valid" in ev["message"] and "token_secret" in ev["message"]
    good = token_for(keyed, ALPHA)["token"]
    body, sig = good[len("ast1."):].split(".")
    tampered = "ast1." + body[:-2] + ("AA" if body[-2:] != "AA" else "BB") + "." + sig
    assert "signature is not valid" in (await ws_refusal(keyed, tampered))["message"]
    assert "malformed" in (await ws_refusal(keyed, "ast1.nodot"))["message"]
    ev = await ws_refusal(keyed, minted("rotated-secret", "alpha", expires_in=60))
    assert "no longer configured" in ev["message"]


async def test_token_carries_its_keys_quota(keyed: HubProcess) -> None:
    """alpha allows 1 live session: a session started with alpha's token counts against it."""
    tok = token_for(keyed, ALPHA)["token"]
    async with websockets.connect(f"{keyed.ws}?token={tok}") as first:
        await first.send(json.dumps({"type": "start", "audio": PCM16}))
        assert json.loads(await first.recv())["type"] == "session.started"
        async with websockets.connect(f"{keyed.ws}?token={tok}") as second:
            await second.send(json.dumps({"type": "start", "audio": PCM16}))
            ev = json.loads(await second.recv())
            assert ev["code"] == "too_many_sessions" and "API key" in ev["message"], ev
        await first.send(json.dumps({"type": "stop"}))
        async for _ in first:
            pass


# -- HTTP + SSE ------------------------------------------------------------------------------------------
async def test_sse_session_with_a_token(keyed: HubProcess) -> None:
    tok = token_for(keyed, BETA)["token"]
    other = token_for(keyed, ALPHA)["token"]
    h = {"Authorization": f"Bearer {tok}"}
    async with httpx.AsyncClient(base_url=keyed.http, timeout=30) as http:
        r = await http.post("/v1/sessions", json={"audio": PCM16}, headers=h)
        assert r.status_code == 201, r.text
        sid = r.json()["session_id"]
        # another key's token may not drive this session (to it, the session does not exist); its own key's
        # token may (test_hostile_tenants: every wire and operation)
        r = await http.post(f"/v1/sessions/{sid}/flush", headers={"Authorization": f"Bearer {other}"})
        assert r.status_code == 404 and r.json()["error"] == {"code": "session_not_found",
                                                              "message": f"no session '{sid}'"}, r.text
        # a token expired before this session started drives nothing
        stale = minted(BETA, "beta", expires_in=-1)
        refused(await http.post(f"/v1/sessions/{sid}/flush", headers={"Authorization": f"Bearer {stale}"}),
                "had expired when session")
        pcm = load_pcm16(CLIP.path).tobytes()
        assert (await http.post(f"/v1/sessions/{sid}/audio", content=pcm, headers=h)).status_code == 202
        assert (await http.post(f"/v1/sessions/{sid}/stop", headers=h)).status_code == 202
        events = []
        async with http.stream("GET", f"/v1/sessions/{sid}/events?token={tok}") as resp:  # EventSource style
            assert resp.status_code == 200
            async for line in resp.aiter_lines():
                if line.startswith("data:"):
                    events.append(json.loads(line[5:]))
                    if events[-1]["type"] == "session.ended":
                        break
        text = " ".join(e["text"] for e in events if e["type"] == "transcript.final")
        assert wer([CLIP.transcript], [text]) < 0.25, text
        # an unknown session is the route's answer, whoever asks
        r = await http.post("/v1/sessions/nope/flush", headers=h)
        assert r.status_code == 404 and r.json()["error"]["code"] == "session_not_found", r.text
        # an expired token starts nothing
        r = await http.post("/v1/sessions", json={"audio": PCM16},
                            headers={"Authorization": f"Bearer {minted(BETA, 'beta', expires_in=-30)}"})
        refused(r, "expired")


# -- Socket.IO ---------------------------------------------------------------------------------------------
async def test_socketio_token_in_connect_auth(keyed: HubProcess) -> None:
    tok = token_for(keyed, BETA)["token"]
    c = socketio.AsyncClient(reconnection=False)
    ended = asyncio.get_running_loop().create_future()
    c.on("session.ended", lambda ev: ended.done() or ended.set_result(ev), namespace="/asr")
    await c.connect(keyed.http, namespaces=["/asr"], transports=["websocket"], auth={"token": tok}, wait_timeout=10)
    try:
        ack = await c.call("start", {"audio": PCM16}, namespace="/asr", timeout=10)
        assert ack.get("session_id"), ack
        await c.emit("stop", namespace="/asr")
        assert (await asyncio.wait_for(ended, 30))["reason"] == "stop"
    finally:
        await c.disconnect()
    bad: list[Any] = []
    r = socketio.AsyncClient(reconnection=False)
    r.on("connect_error", bad.append, namespace="/asr")
    with pytest.raises(socketio.exceptions.ConnectionError):
        await r.connect(keyed.http, namespaces=["/asr"], transports=["websocket"], wait_timeout=10,
                        auth={"token": minted(BETA, "beta", expires_in=-2)})
    await r.disconnect()
    assert bad and bad[0]["data"]["code"] == "unauthorized" and "expired" in bad[0]["data"]["message"], bad


# -- gRPC ------------------------------------------------------------------------------------------------
async def test_grpc_token_in_metadata(keyed: HubProcess) -> None:
    from asrhub.wire import grpc_gen
    pb, pb_grpc = grpc_gen.load()
    tok = token_for(keyed, BETA)["token"]
    md = (("authorization", f"Bearer {tok}"),)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{keyed.grpc_port}") as ch:
        stub = pb_grpc.AsrHubStub(ch)
        requests = iter([pb.StreamingRequest(start=pb.StartSession()), pb.StreamingRequest(stop=pb.Stop())])
        events = [ev async for ev in stub.StreamingRecognize(requests, timeout=30, metadata=md)]
        assert events[0].type == "session.started" and events[-1].type == "session.ended"
        for call in (stub.Recognize(pb.RecognizeRequest(audio=CLIP.path.read_bytes()), timeout=30, metadata=md),
                     stub.ListProviders(pb.ListProvidersRequest(), timeout=10, metadata=md)):
            with pytest.raises(grpc.aio.AioRpcError) as exc:
                await call
            assert exc.value.code() == grpc.StatusCode.UNAUTHENTICATED
            assert "only starts sessions" in (exc.value.details() or "")
        expired = (("authorization", f"Bearer {minted(BETA, 'beta', expires_in=-2)}"),)

        async def nothing_yet() -> Any:
            # nothing sent, the request stream left open: refused all the same (see test_auth_transports)
            await asyncio.Event().wait()
            yield pb.StreamingRequest(start=pb.StartSession())

        with pytest.raises(grpc.aio.AioRpcError) as exc:
            _ = [ev async for ev in stub.StreamingRecognize(nothing_yet(), timeout=10, metadata=expired)]
        assert exc.value.code() == grpc.StatusCode.UNAUTHENTICATED and "expired" in (exc.value.details() or "")


# -- the Python client ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("transport", ["websocket", "grpc"])
async def test_python_client_with_a_token(keyed: HubProcess, transport: str) -> None:
    from asrhub.client import HubRequestError, connect, create_token
    issued = await create_token(keyed.http, BETA, ttl_s=30)
    assert issued.expires_at > time.time() + 25
    url = keyed.http if transport != "grpc" else f"127.0.0.1:{keyed.grpc_port}"
    text = await connect(transport, url, api_key=issued.token).transcribe(CLIP.path, language="en")
    assert wer([CLIP.transcript], [text]) < 0.25, text
    with pytest.raises(HubRequestError) as exc:
        await create_token(keyed.http, issued.token)
    assert exc.value.code == "unauthorized" and exc.value.status == 401
    with pytest.raises(HubRequestError) as exc:
        await connect(transport, url, api_key=minted(BETA, "beta", expires_in=-1)).transcribe(CLIP.path)
    assert exc.value.code == "unauthorized" and "expired" in exc.value.message


# -- no secret configured ------------------------------------------------------------------------------------
def test_ephemeral_secrets_do_not_verify_each_other() -> None:
    """Two hubs without token_secret (two restarts, or two nodes) refuse each other's tokens; a shared
    secret makes them interchangeable."""
    a, b = TokenSigner(None), TokenSigner(None)
    tok, _ = a.issue("alpha", ALPHA, 60)
    assert a.verify(tok).key_id == "alpha"
    with pytest.raises(Exception, match="signature is not valid"):
        b.verify(tok)
    shared = TokenSigner(SECRET).issue("alpha", ALPHA, 60)[0]
    assert TokenSigner(SECRET).verify(shared).expires_at > time.time()
