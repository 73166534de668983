"""Issue 12 item 7: what a hidden hostile suite found, fixed in general and tested in several variants.

- `audio.sample_rate` / `audio.channels` are range-checked for every encoding (containers, Opus, raw
  and G.711 PCM), on every transport, on a resume and on REST: `invalid_command` naming the field;
- gRPC unary calls with undecodable (or unknown-field) request bytes: INVALID_ARGUMENT with the
  `asrhub-error-code` trailer; a bad `language` is refused by Recognize exactly as by REST and `start`;
- a client that drops mid-body is one INFO line, no ERROR and no traceback;
- HTTP errors outside a session (404, 405, ...) carry `{"error": {"code", "message"}}` (OpenAI routes:
  OpenAI's shape); HEAD is answered as GET, headers only, the live event stream's too;
- request headers over server.max_header_bytes / server.max_headers: 431 `headers_too_large`;
- malformed Engine.IO / Socket.IO packets: a few brief WARNING lines, never a traceback flood.

One hub for the module; after all of it the hub still serves a normal session on every transport.
"""

from __future__ import annotations

import asyncio
import json
import re
import socket
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.contract.clients import CLIENTS, PCM16, connected
from tests.support import FileWatch, HubProcess, base_config, clip, load_pcm16, running, until

MAX_RATE = 192_000
MAX_CHANNELS = 8
ENCODINGS = ("pcm_s16le", "pcm_f32le", "pcm_mulaw", "pcm_alaw", "wav", "flac", "mp3", "ogg", "webm", "opus")


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HubProcess]:
    env = {"ASRHUB_LIMITS__RESUME_WINDOW_S": "1", "ASRHUB_LIMITS__IDLE_TIMEOUT_S": "5"}
    yield from running(base_config(), tmp_path_factory.mktemp("hostile-edges"), env=env)




def log_since(hub: HubProcess, offset: int) -> str:
    return hub.log.read_bytes()[offset:].decode(errors="replace")


async def wait_log(hub: HubProcess, offset: int, needle: str, wait_s: float = 15.0) -> str:
    """The hub log written since `offset`, once it holds `needle` (the line the hub writes when it has
    handled the case: the event this test synchronises on)."""
    def holds() -> str | None:
        text = log_since(hub, offset)
        return text if needle in text else None

    try:  # checked after each write to the log
        return await until(holds, FileWatch(hub.log), timeout=wait_s, what=f"{needle!r} in the hub log")
    except AssertionError as e:
        raise AssertionError(f"{e}:\n{log_since(hub, offset)[-2000:]}") from None


# -- sample_rate / channels for every encoding ------------------------------------------------------
def _bad_audio(transport: str) -> list[tuple[str, dict[str, Any]]]:
    """(field, audio spec) pairs that must be refused. gRPC's fields are uint32: no negatives, no 2**40."""
    rates = [0, 1, 3999, MAX_RATE + 1, 10**9] + ([] if transport == "grpc" else [-16000, 2**40, 2**63])
    channels = [0, MAX_CHANNELS + 1, 100_000] + ([] if transport == "grpc" else [-1])
    out: list[tuple[str, dict[str, Any]]] = []
    for i, enc in enumerate(ENCODINGS):  # every encoding gets a bad rate and a bad channel count
        out.append(("sample_rate", {"encoding": enc, "sample_rate": rates[i % len(rates)], "channels": 1}))
        out.append(("channels", {"encoding": enc, "sample_rate": 48000, "channels": channels[i % len(channels)]}))
    return out


@pytest.mark.parametrize("transport", list(CLIENTS))
async def test_audio_spec_is_range_checked_for_every_encoding(hub: HubProcess, transport: str) -> None:
    async with connected(hub, transport) as c:
        for field, audio in _bad_audio(transport):
            assert await c.start({"audio": audio}) is None, (transport, audio)
            err = await c.next_error(15)
            assert err["code"] == "invalid_command", (audio, err)
            assert f"audio.{field}" in err["message"], (audio, err)
            assert str(audio[field]) in err["message"], (audio, err)
        assert not c.session_events(), c.events  # nothing was started, nothing echoed back


@pytest.mark.parametrize("transport", [t for t in CLIENTS if t != "grpc"])  # gRPC: uint32 cannot say 2**40
async def test_absurd_audio_on_a_resume_is_refused(hub: HubProcess, transport: str) -> None:
    async with connected(hub, "websocket") as owner:
        sid = await owner.start({"audio": PCM16})
        assert sid
        async with connected(hub, transport) as c:
            assert await c.start({"resume": {"session_id": sid, "last_seq": 0},
                                  "audio": {"encoding": "wav", "sample_rate": 2**40}}) in (None, sid)
            err = await c.next_error(15)
            assert err["code"] == "invalid_command" and "audio.sample_rate" in err["message"], err
        await owner.stop()
        assert (await owner.wait_ended(30))[-1]["reason"] == "stop"


async def test_rest_raw_upload_audio_spec_is_range_checked(hub: HubProcess) -> None:
    async with httpx.AsyncClient(base_url=hub.http, timeout=60) as http:
        for field, value, enc in (("sample_rate", 0, "pcm_mulaw"), ("sample_rate", 2**40, "pcm_s16le"),
                                  ("sample_rate", MAX_RATE + 1, "wav"), ("channels", 0, "pcm_alaw"),
                                  ("channels", 1000, "flac")):
            r = await http.post("/v1/transcribe", files={"file": ("a.raw", bytes(3200), "application/octet-stream")},
                                data={"encoding": enc, field: str(value)})
            assert r.status_code == 400, (field, value, r.text)
            err = r.json()["error"]
            assert err["code"] == "invalid_command" and f"audio.{field}" in err["message"], err


# -- gRPC unary calls ---------------------------------------------------------------------------------
GARBAGE_REQUESTS = (
    b"\xff",                              # field 31, wire type 7: no such wire type
    b"\x0a\xff\xff\xff\xff\x0f",          # field 1 (bytes) with a length far past the end
    b"\x0a\x05abc",                       # field 1, length 5, 3 bytes
    b"\x08",                              # field 1 as a varint, cut before its value
    b"\x08\x01",                          # field 1 (bytes) sent as a varint
    b"\xf8\x06\x01",                      # field 111: not in the contract
    b"\x80\x80\x80\x80\x80\x80\x80\x80\x80\x80\x01",  # an over-long tag varint
    bytes(range(256)),
)


async def _unary_error(hub: HubProcess, method: str, raw: bytes) -> tuple[Any, str, str]:
    import grpc
    async with grpc.aio.insecure_channel(f"127.0.0.1:{hub.grpc_port}") as ch:
        call = ch.unary_unary(f"/asrhub.v1.AsrHub/{method}", request_serializer=lambda b: b,
                              response_deserializer=lambda b: b)
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await call(raw, timeout=60)
    trailers = dict(info.value.trailing_metadata() or ())
    return info.value.code(), str(trailers.get("asrhub-error-code")), info.value.details() or ""


@pytest.mark.parametrize("method", ["Recognize", "ListProviders"])
async def test_grpc_unary_undecodable_requests(hub: HubProcess, method: str) -> None:
    import grpc
    for raw in GARBAGE_REQUESTS:
        status, code, details = await _unary_error(hub, method, raw)
        assert status == grpc.StatusCode.INVALID_ARGUMENT, (method, raw, status, details)
        assert code == "invalid_command", (method, raw, code)
        assert details, (method, raw)


async def test_language_is_validated_the_same_on_every_entry_point(hub: HubProcess) -> None:
    import grpc

    from asrhub.wire import grpc_gen
    pb, _ = grpc_gen.load()
    wav = clip("en_jfk").path.read_bytes()
    for language in ("xx", "klingon", "XX-EN", "e", "en_US"):  # BCP-47: "EN-XX" would be English
        raw = pb.RecognizeRequest(audio=wav, language=language).SerializeToString()
        status, code, grpc_message = await _unary_error(hub, "Recognize", raw)
        assert status == grpc.StatusCode.INVALID_ARGUMENT and code == "invalid_command", (language, status, code)
        async with httpx.AsyncClient(base_url=hub.http, timeout=60) as http:
            r = await http.post("/v1/transcribe", files={"file": ("a.flac", wav, "audio/flac")},
                                data={"language": language})
        assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_command", r.text
        assert r.json()["error"]["message"] == grpc_message, (r.text, grpc_message)
        for transport in CLIENTS:
            async with connected(hub, transport) as c:
                assert await c.start({"audio": PCM16, "language": language}) is None
                err = await c.next_error(15)
                assert err["code"] == "invalid_command" and err["message"] == grpc_message, (transport, err)


# -- clients that go away mid-body ----------------------------------------------------------------------
async def _drop_mid_body(hub: HubProcess, method: str, path: str, ctype: str, declared: int, sent: bytes) -> None:
    loop = asyncio.get_running_loop()
    s = socket.socket()
    s.setblocking(False)
    try:
        await loop.sock_connect(s, ("127.0.0.1", hub.port))
        head = (f"{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Type: {ctype}\r\n"
                f"Content-Length: {declared}\r\n\r\n").encode()
        await loop.sock_sendall(s, head + sent)
    finally:
        s.close()


async def test_client_dropping_mid_body_is_not_an_error(hub: HubProcess) -> None:
    async with httpx.AsyncClient(base_url=hub.http, timeout=30) as http:
        sid = (await http.post("/v1/sessions", json={"audio": PCM16})).json()["session_id"]
        handshake = (await http.get("/socket.io/?EIO=4&transport=polling")).text
        eio = json.loads(handshake[handshake.index("{"):])["sid"]
    drops = [("POST", f"/socket.io/?EIO=4&transport=polling&sid={eio}", "text/plain;charset=UTF-8", 5000, b"40/asr,"),("POST", "/v1/sessions", "application/json", 5000, b'{"audio": {"encoding": '),
             ("POST", "/v1/sessions", "application/json", 10**6, b""),
             ("POST", f"/v1/sessions/{sid}/audio", "application/octet-stream", 64000, bytes(1000)),
             ("POST", f"/v1/sessions/{sid}/audio", "application/octet-stream", 3200, bytes(3199)),
             ("POST", "/v1/transcribe", "multipart/form-data; boundary=xyzzy", 100_000,
              b'--xyzzy\r\nContent-Disposition: form-data; name="file"; filename="a.wav"\r\n\r\nRIFF'),
             ("POST", "/v1/audio/transcriptions", "multipart/form-data; boundary=xyzzy", 100_000, b"--xyzzy\r\n")]
    for method, path, ctype, declared, sent in drops:
        offset = hub.log.stat().st_size
        await _drop_mid_body(hub, method, path, ctype, declared, sent)
        if path.startswith("/v1/sessions"):  # the SSE routes say so in one INFO line
            text = await wait_log(hub, offset, "went away before its request body was complete")
        else:
            async with httpx.AsyncClient(base_url=hub.http, timeout=30) as http:
                assert (await http.get("/healthz")).status_code == 200
            text = log_since(hub, offset)
        assert "Traceback" not in text and " ERROR " not in text, (path, text[-3000:])
    # the session the audio drops were aimed at is untouched
    async with httpx.AsyncClient(base_url=hub.http, timeout=30) as http:
        assert (await http.post(f"/v1/sessions/{sid}/audio", content=bytes(3200))).status_code == 202
        assert (await http.delete(f"/v1/sessions/{sid}")).status_code == 204


# -- HTTP errors outside a session ------------------------------------------------------------------------
@pytest.mark.parametrize(("method", "path", "status", "code"), [
    ("GET", "/nope", 404, "not_found"),
    ("GET", "/v1/nope", 404, "not_found"),
    ("GET", "/v1/sessions/abc/nothing/here", 404, "not_found"),
    ("GET", "/no-such-file.js", 404, "not_found"),
    ("POST", "/healthz", 405, "method_not_allowed"),
    ("PUT", "/v1/sessions", 405, "method_not_allowed"),
    ("GET", "/v1/sessions", 405, "method_not_allowed"),
    ("DELETE", "/v1/providers", 405, "method_not_allowed"),
    ("PATCH", "/v1/sessions/abc/events", 405, "method_not_allowed"),
    ("PUT", "/index.html", 405, "method_not_allowed"),
])
async def test_http_errors_carry_the_contract_body(hub: HubProcess, method: str, path: str, status: int,
                                                   code: str) -> None:
    async with httpx.AsyncClient(base_url=hub.http, timeout=15) as http:
        r = await http.request(method, path)
    assert r.status_code == status, (method, path, r.status_code, r.text)
    body = r.json()
    assert set(body) == {"error"} and body["error"]["code"] == code and body["error"]["message"], body
    assert "detail" not in body


@pytest.mark.parametrize(("method", "path", "status"), [
    ("GET", "/socket.io/?EIO=4&transport=bogus", 400),
    ("GET", "/socket.io/?EIO=4&transport=polling&sid=no-such-sid", 400),
    ("GET", "/socket.io/?EIO=2&transport=polling", 400),
    ("POST", "/socket.io/?EIO=4&transport=polling", 400),
    ("PUT", "/socket.io/?EIO=4&transport=polling", 405),
])
async def test_socketio_http_errors_carry_the_contract_body(hub: HubProcess, method: str, path: str,
                                                            status: int) -> None:
    async with httpx.AsyncClient(base_url=hub.http, timeout=15) as http:
        r = await http.request(method, path, content=b"" if method in ("POST", "PUT") else None)
    assert r.status_code == status, (method, path, r.status_code, r.text)
    assert r.headers["content-type"] == "application/json", r.headers
    err = r.json()["error"]
    assert set(err) == {"code", "message"} and err["code"] in ("invalid_command", "method_not_allowed"), err
    assert err["message"].startswith("Socket.IO: "), err


@pytest.mark.parametrize(("method", "path", "status"), [("DELETE", "/v1/audio/transcriptions", 405),
                                                        ("GET", "/v1/audio/transcriptions", 405),
                                                        ("GET", "/v1/audio/nope", 404)])
async def test_openai_routes_answer_errors_in_openai_shape(hub: HubProcess, method: str, path: str,
                                                           status: int) -> None:
    async with httpx.AsyncClient(base_url=hub.http, timeout=15) as http:
        r = await http.request(method, path)
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert err["message"] and err["type"] == "invalid_request_error" and "param" in err and err["code"], err


async def test_head_is_answered_as_get_without_a_body(hub: HubProcess) -> None:
    async with httpx.AsyncClient(base_url=hub.http, timeout=15) as http:
        for path in ("/healthz", "/readyz", "/v1/providers", "/metrics", "/openapi.json", "/"):
            get, head = await http.get(path), await http.head(path)
            assert head.status_code == get.status_code == 200, (path, head.status_code, get.status_code)
            assert head.content == b"", path
            assert head.headers.get("content-type") == get.headers.get("content-type"), path
        for path in ("/nope", "/v1/sessions/nope/events"):
            head = await http.head(path)
            assert head.status_code == 404 and head.content == b"", (path, head.status_code)
        # a live session's event stream: headers only, at once, and the session is left as it was
        sid = (await http.post("/v1/sessions", json={"audio": PCM16})).json()["session_id"]
        for _ in range(3):
            head = await asyncio.wait_for(http.head(f"/v1/sessions/{sid}/events"), 10)
            assert head.status_code == 200, head.text
            assert head.headers["content-type"].startswith("text/event-stream") and head.content == b""
        bad = await http.head(f"/v1/sessions/{sid}/events", headers={"Last-Event-ID": "999"})
        assert bad.status_code == 409 and bad.content == b""  # a seq the session has not reached: a conflict
        events: list[str] = []
        async with http.stream("GET", f"/v1/sessions/{sid}/events") as stream:
            assert stream.status_code == 200
            await http.post(f"/v1/sessions/{sid}/stop")
            async for line in stream.aiter_lines():
                if line.startswith("event: "):
                    events.append(line[7:])
                if events[-1:] == ["session.ended"]:
                    break
        assert events[0] == "session.started" and events[-1] == "session.ended", events


# -- request header caps -----------------------------------------------------------------------------------
@pytest.mark.parametrize("headers", [
    {"x-big": "a" * 40_000},
    {"cookie": "; ".join(f"c{i}={'v' * 400}" for i in range(100))},
    {f"x-h{i}": "1" for i in range(150)},
    {"x-huge": "a" * (16 * 1024 * 1024)},
], ids=["one-40k", "cookie-40k", "150-lines", "16MiB"])
async def test_oversized_request_headers_are_431(hub: HubProcess, headers: dict[str, str]) -> None:
    async with httpx.AsyncClient(base_url=hub.http, timeout=60) as http:
        for path in ("/healthz", "/v1/providers", "/v1/sessions/x/events", "/"):
            r = await http.get(path, headers=headers)
            assert r.status_code == 431, (path, r.status_code, r.text[:200])
            err = r.json()["error"]
            assert err["code"] == "headers_too_large" and "header" in err["message"], err
        ok = await http.get("/healthz", headers={"cookie": "c=" + "v" * 8000})  # a fat but normal cookie
        assert ok.status_code == 200
        # a big body behind normal headers is not a big head (it may arrive in the same socket read)
        r = await http.post("/v1/transcribe", files={"file": ("a.raw", bytes(2 * 1024 * 1024), "audio/wav")})
        assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_audio", r.text[:300]


async def test_oversized_websocket_handshake_is_refused(hub: HubProcess) -> None:
    import websockets
    from websockets.exceptions import InvalidStatus
    with pytest.raises(InvalidStatus) as info:
        async with websockets.connect(f"ws://127.0.0.1:{hub.port}/v1/ws",
                                      additional_headers={"x-big": "a" * 40_000}):
            pass
    assert info.value.response.status_code == 431


# -- a request head that never completes ----------------------------------------------------------------------
@pytest.fixture(scope="module")
def quick_head_hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HubProcess]:
    h = HubProcess(base_config(), tmp_path_factory.mktemp("head-timeout"),
                   env={"ASRHUB_SERVER__HEADER_TIMEOUT_S": "1.5"}).start()
    yield h
    h.stop()


async def _read_until_closed(s: socket.socket, wait_s: float) -> bytes:
    loop = asyncio.get_running_loop()
    data = b""
    async with asyncio.timeout(wait_s):
        while chunk := await loop.sock_recv(s, 65536):
            data += chunk
    return data


@pytest.mark.parametrize("drip", [b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ",
                                  b"POST /v1/sessions HTTP/1.1\r\n",
                                  b"GET /v1/providers HT"])
async def test_a_dripped_request_head_is_answered_408(quick_head_hub: HubProcess, drip: bytes) -> None:
    loop = asyncio.get_running_loop()
    s = socket.socket()
    s.setblocking(False)
    try:
        await loop.sock_connect(s, ("127.0.0.1", quick_head_hub.port))
        for i in range(0, len(drip), 4):  # a few bytes at a time; the head never completes
            await loop.sock_sendall(s, drip[i:i + 4])
        data = await _read_until_closed(s, 15)
    finally:
        s.close()
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408"), data[:300]
    err = json.loads(body)["error"]
    assert err["code"] == "invalid_command" and "not complete" in err["message"], err


async def test_a_silent_connection_is_closed_and_a_slow_but_complete_one_is_served(quick_head_hub: HubProcess) -> None:
    loop = asyncio.get_running_loop()
    silent, slow = socket.socket(), socket.socket()
    for s in (silent, slow):
        s.setblocking(False)
        await loop.sock_connect(s, ("127.0.0.1", quick_head_hub.port))
    try:
        await loop.sock_sendall(slow, b"GET /healthz HTTP/1.1\r\n")
        await loop.sock_sendall(slow, b"Host: x\r\nConnection: close\r\n\r\n")  # complete well in time
        assert (await _read_until_closed(slow, 15)).startswith(b"HTTP/1.1 200")
        assert await _read_until_closed(silent, 15) == b""  # closed without an answer
    finally:
        silent.close()
        slow.close()
    async with httpx.AsyncClient(base_url=quick_head_hub.http, timeout=15) as http:
        assert (await http.get("/healthz")).status_code == 200


# -- malformed Engine.IO / Socket.IO packets -----------------------------------------------------------------
MALFORMED_WS = ["zz", "9garbage", "4" + "[" * 5000, "\x00\xff", "42/asr,[", '42/asr,{"a":', "4", "",
                "42/asr,1" + "[" * 3000, "2probe?"]


async def test_malformed_engineio_packets_log_briefly(hub: HubProcess) -> None:
    import websockets
    offset = hub.log.stat().st_size
    for round_ in range(3):  # 30 connections of malformed packets, and polling garbage too
        for pkt in MALFORMED_WS:
            async with websockets.connect(f"ws://127.0.0.1:{hub.port}/socket.io/?EIO=4&transport=websocket") as ws:
                await ws.recv()
                await ws.send("40/asr,")
                await ws.recv()
                await ws.send(pkt)
                await ws.send(b"\x00\x01\xff")
                await ws.send(pkt)
        async with httpx.AsyncClient(base_url=hub.http, timeout=15) as http:
            r = await http.get("/socket.io/?EIO=4&transport=polling")
            eio = r.text[r.text.index("{"):]
            sid = json.loads(eio)["sid"]
            for body in (b"\x1e\x1e4zz\x1ebad", b"b\xff\xfe", b"4" + b"[" * 5000, b"\x1e"):
                r = await http.post(f"/socket.io/?EIO=4&transport=polling&sid={sid}", content=body)
                assert r.status_code < 500, (round_, body[:10], r.status_code)
    text = await wait_log(hub, offset, "asrhub.socketio.engineio")
    lines = [line for line in text.splitlines() if "engineio" in line or "socketio" in line]
    assert "Traceback" not in text and " ERROR " not in text, text[-4000:]
    assert len(lines) <= 20, "\n".join(lines)  # rate-limited: not one per packet
    for line in lines:
        assert len(line) < 600, line
    await normal_session(hub, "socketio")


# ---------------------------------------------------------------------------------------------
async def normal_session(hub: HubProcess, transport: str) -> None:
    async with connected(hub, transport) as c:
        assert await c.start({"audio": PCM16})
        for _ in range(5):
            await c.send_audio(bytes(3200))
        await c.stop()
        events = await c.wait_ended(60)
        assert events[-1]["reason"] == "stop" and not [e for e in events if e["type"] == "error"], events


@pytest.mark.parametrize("transport", [t for t in CLIENTS if t != "sse"])  # SSE: each POST is answered 409
async def test_audio_in_flight_after_stop_is_refused_once(hub: HubProcess, transport: str) -> None:
    """Audio a client sends after its stop (or a shutdown) is refused with one error per connection, not one
    per frame (a newcomer saw 5-8 identical errors at every shutdown); what follows is dropped quietly."""
    speech = load_pcm16(clip("en_libri_1089-134691-0001").path)[: 16000 * 3].tobytes()
    async with connected(hub, transport) as c:
        assert await c.start({"audio": PCM16})
        await c.stream(speech, chunk_bytes=6400, realtime=0)
        await c.stop()
        for _ in range(10):
            await c.send_audio(bytes(3200))
        await c.send_unknown_command()  # a different error, after the audio errors on the same connection
        refused = []
        while (err := await c.next_error(30))["code"] == "invalid_command" and \
                re.search("stopping|ended", err["message"] or ""):
            refused.append(err)
        assert len(refused) <= 1, refused
        assert (await c.wait_ended(60))[-1]["reason"] == "stop"


@pytest.mark.parametrize("transport", list(CLIENTS))
async def test_zz_still_serving(hub: HubProcess, transport: str) -> None:
    await normal_session(hub, transport)
    assert hub.alive()
    assert "Traceback" not in hub.log.read_text(errors="replace")
