"""Issue 7: hostile input on every wire (WebSocket, HTTP+SSE, Socket.IO, gRPC, REST uploads).

Every case must be answered with its typed `error` event (or HTTP error body) naming the problem, the
hub must stay up (a normal short session works afterwards on every transport), and once the module is
done the live session count drops back to zero within the resume / idle windows.

Runs against a dedicated hub with short windows (resume 1 s, idle 3 s, 1 MiB messages); the slow-reader
tests (a client that stops reading) use a second one with limits.max_events_buffered = 64.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import random
import socket
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import httpx
import pytest

from tests.contract.clients import CLIENTS, PCM16, Client, SseClient, connected
from tests.support import FileWatch, HubProcess, base_config, clip, running, until

TRANSPORTS = list(CLIENTS)
MIB = 1024 * 1024
BIG = 10 * MIB  # well over limits.max_message_bytes (1 MiB here)
RNG = random.Random(7)
SILENCE = bytes(3200)  # 100 ms of 16 kHz s16le silence


def _rand(n: int) -> bytes:
    return RNG.randbytes(n)


@pytest.fixture(scope="module")
def hostile_hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HubProcess]:
    env = {"ASRHUB_LIMITS__RESUME_WINDOW_S": "1", "ASRHUB_LIMITS__IDLE_TIMEOUT_S": "3",
           "ASRHUB_LIMITS__MAX_MESSAGE_BYTES": str(MIB)}
    yield from running(base_config(), tmp_path_factory.mktemp("hostile"), env=env)


Case = Callable[[HubProcess], Awaitable[None]]
CASES: dict[str, Case] = {}


def case(name: str) -> Callable[[Case], Case]:
    def deco(fn: Case) -> Case:
        assert name not in CASES, name
        CASES[name] = fn
        return fn
    return deco




async def expect(c: Client, code: str, wait_s: float = 15.0) -> dict[str, Any]:
    try:
        err = await c.next_error(wait_s)
    except TimeoutError:
        raise AssertionError(f"{c.name}: no error {code!r} in {wait_s} s; events {c.types()}") from None
    assert err["code"] == code, (c.name, err)
    assert err.get("message"), err
    return err


async def expect_some(c: Client, wait_s: float = 15.0) -> dict[str, Any]:
    try:
        return await c.next_error(wait_s)
    except TimeoutError:
        raise AssertionError(f"{c.name}: no error in {wait_s} s; events {c.types()}") from None


async def started(c: Client, body: dict[str, Any] | None = None) -> str:
    sid = await c.start({"audio": PCM16, **(body or {})})
    assert sid, f"{c.name}: start refused: {c.events[-1:]}"
    return sid


# -- malformed / unknown commands (every transport) ------------------------------------------------
for _t in TRANSPORTS:
    @case(f"{_t}-malformed-command")
    async def _malformed(hub: HubProcess, t: str = _t) -> None:
        async with connected(hub, t) as c:
            await c.send_malformed()
            await expect(c, "invalid_command")

    @case(f"{_t}-unknown-command")
    async def _unknown(hub: HubProcess, t: str = _t) -> None:
        async with connected(hub, t) as c:
            await started(c)
            await c.send_unknown_command()
            await expect(c, "invalid_command")

    @case(f"{_t}-oversized-audio-frame")
    async def _oversized(hub: HubProcess, t: str = _t) -> None:
        # Socket.IO's own frame limit is max_message_bytes + 64 KiB: just over the hub's limit
        size = MIB + 4096 if t == "socketio" else BIG
        async with connected(hub, t) as c:
            await started(c)
            await c.send_audio(bytes(size))
            await expect(c, "payload_too_large")

    @case(f"{_t}-unknown-session")
    async def _unknown_session(hub: HubProcess, t: str = _t) -> None:
        async with connected(hub, t) as c:
            await c.audio_to_unknown_session("no-such-session-" + os.urandom(4).hex(), SILENCE)
            await expect(c, "session_not_found")

    @case(f"{_t}-resume-beyond-last-seq")
    async def _resume_beyond(hub: HubProcess, t: str = _t) -> None:
        async with connected(hub, "websocket") as owner:
            sid = await started(owner)
            async with connected(hub, t) as c:
                await c.start({"resume": {"session_id": sid, "last_seq": 10**6}})
                await expect(c, "invalid_command")
            await owner.stop()
            await owner.wait_ended(30)

    @case(f"{_t}-stop-twice")
    async def _stop_twice(hub: HubProcess, t: str = _t) -> None:
        async with connected(hub, t) as c:
            await started(c)
            # speech, so the session is still finalising (a decode) when the second stop arrives; with
            # silence alone it could end first, and an ended session's transport may already be closed
            await c.send_audio(_speech()[: 2 * 32000])
            await c.stop()
            await c.stop()
            await expect(c, "invalid_command")
            await c.wait_ended(30)

    @case(f"{_t}-absurd-sample-rate")
    async def _rate(hub: HubProcess, t: str = _t) -> None:
        async with connected(hub, t) as c:
            assert await c.start({"audio": {**PCM16, "sample_rate": 10**9}}) is None
            err = await expect(c, "invalid_command")
            assert "sample_rate" in err["message"]

    @case(f"{_t}-absurd-channels")
    async def _channels(hub: HubProcess, t: str = _t) -> None:
        async with connected(hub, t) as c:
            assert await c.start({"audio": {**PCM16, "channels": 100_000}}) is None
            err = await expect(c, "invalid_command")
            assert "channels" in err["message"]

    @case(f"{_t}-unsupported-encoding")
    async def _encoding(hub: HubProcess, t: str = _t) -> None:
        async with connected(hub, t) as c:
            assert await c.start({"audio": {**PCM16, "encoding": "aac_adts"}}) is None
            await expect(c, "unsupported_encoding")

    @case(f"{_t}-flood-of-one-sample-frames")
    async def _flood(hub: HubProcess, t: str = _t) -> None:
        n = 300 if t == "sse" else 5000  # SSE: one HTTP request each
        async with connected(hub, t) as c:
            await started(c)
            for _ in range(n):
                await c.send_audio(b"\x01\x00")
            await c.send_audio(b"\x01")  # half a sample: not a whole s16le frame
            err = await expect(c, "invalid_audio", 60)
            assert "frame" in err["message"]
            await c.stop()
            events = await c.wait_ended(60)
            assert events[-1]["stats"]["audio_ms"] >= n * 1000 // 16000 - 1, events[-1]

del _t


# -- garbage / truncated containers ------------------------------------------------------------------
for _t, _enc in (("websocket", "webm"), ("sse", "mp3"), ("socketio", "webm"), ("grpc", "webm"),
                 ("websocket", "ogg"), ("grpc", "flac")):
    @case(f"{_t}-garbage-{_enc}")
    async def _garbage(hub: HubProcess, t: str = _t, enc: str = _enc) -> None:
        async with connected(hub, t) as c:
            await started(c, {"audio": {"encoding": enc, "sample_rate": 48000, "channels": 1}})
            await c.send_audio(_rand(8192))
            # a demuxer may wait for more bytes (random bytes can look like a partial header): the end
            # of the stream decides then. After a fatal error at feed, this stop is refused (its error,
            # outside the session, may overtake the session's own error event on the wire).
            await c.stop()
            codes = [(await expect_some(c))["code"]]
            if codes[0] != "invalid_audio":
                codes.append((await expect_some(c))["code"])
            assert "invalid_audio" in codes and set(codes) <= {"invalid_audio", "invalid_command"}, codes
del _t, _enc


@case("websocket-truncated-flac-header")
async def _truncated_flac(hub: HubProcess) -> None:
    head = clip("en_jfk").path.read_bytes()[:60]  # fLaC + part of STREAMINFO
    async with connected(hub, "websocket") as c:
        await started(c, {"audio": {"encoding": "flac", "sample_rate": 16000, "channels": 1}})
        await c.send_audio(head)
        await c.stop()
        await expect(c, "invalid_audio")
        events = await c.wait_ended(30)
        assert events[-1]["type"] == "session.ended"


@case("sse-truncated-wav-header")
async def _truncated_wav(hub: HubProcess) -> None:
    async with connected(hub, "sse") as c:
        await started(c, {"audio": {"encoding": "wav", "sample_rate": 16000, "channels": 1}})
        await c.send_audio(b"RIFF\x24\x00\x00\x00WAVEfmt ")
        await c.stop()
        await expect(c, "invalid_audio")  # at stop: comes as an error event on the SSE stream
        await c.wait_ended(30)


@case("grpc-bad-opus-packet")
async def _bad_opus(hub: HubProcess) -> None:
    async with connected(hub, "grpc") as c:
        await started(c, {"audio": {"encoding": "opus", "sample_rate": 48000, "channels": 1}})
        await c.send_audio(b"\xff" * 3)  # code 3 packet with a bad frame count
        await expect(c, "invalid_audio")


# -- wrong types, binary vs text -----------------------------------------------------------------
@case("websocket-wrong-types")
async def _ws_types(hub: HubProcess) -> None:
    async with connected(hub, "websocket") as c:
        await c.ws.send(json.dumps({"type": "start", "audio": {"sample_rate": "fast", "channels": [1]},
                                    "interim_results": {"x": 1}}))
        err = await expect(c, "invalid_command")
        assert "sample_rate" in err["message"]
        await c.ws.send(json.dumps({"type": 7}))
        await expect(c, "invalid_command")
        await c.ws.send(json.dumps(["start"]))
        await expect(c, "invalid_command")


@case("sse-wrong-types")
async def _sse_types(hub: HubProcess) -> None:
    async with connected(hub, "sse") as c:
        assert await c.start({"audio": {"sample_rate": 16000.5}, "vad": "loud"}) is None
        await expect(c, "invalid_command")
        await c._post("/v1/sessions", json=[1, 2, 3])
        await expect(c, "invalid_command")


@case("socketio-wrong-types")
async def _sio_types(hub: HubProcess) -> None:
    async with connected(hub, "socketio") as c:
        assert await c.start({"audio": {"sample_rate": None}, "word_timestamps": "yes please"}) is None
        await expect(c, "invalid_command")
        await c._ack("start", [1, 2])
        await expect(c, "invalid_command")


@case("grpc-wrong-wire-types")
async def _grpc_types(hub: HubProcess) -> None:
    async with connected(hub, "grpc") as c:
        c.queue.put_nowait(b"\x08\x01")  # field 1 (start, a message) sent as a varint
        await expect(c, "invalid_command")
        c.queue.put_nowait(b"\x0a\x05\x0a\x03\x08\xff\xff")  # truncated varint inside start.audio
        await expect(c, "invalid_command")


@case("websocket-text-where-binary-expected")
async def _ws_text_audio(hub: HubProcess) -> None:
    async with connected(hub, "websocket") as c:
        await started(c)
        await c.ws.send("\x00\x01" * 100)  # audio sent as a text frame
        await expect(c, "invalid_command")


@case("websocket-binary-where-text-expected")
async def _ws_binary_start(hub: HubProcess) -> None:
    async with connected(hub, "websocket") as c:
        await c.ws.send(json.dumps({"type": "start", "audio": PCM16}).encode())  # start as a binary frame
        err = await expect(c, "invalid_command")
        assert "start" in err["message"]


@case("socketio-text-where-binary-expected")
async def _sio_text_audio(hub: HubProcess) -> None:
    async with connected(hub, "socketio") as c:
        await started(c)
        await c.sio.emit("audio", "these are not samples", namespace=c.NS)
        await expect(c, "invalid_audio")


@case("socketio-binary-where-text-expected")
async def _sio_binary_start(hub: HubProcess) -> None:
    async with connected(hub, "socketio") as c:
        assert await c.start(json.dumps({"audio": PCM16}).encode()) is None  # type: ignore[arg-type]
        await expect(c, "invalid_command")


@case("sse-binary-where-text-expected")
async def _sse_binary_start(hub: HubProcess) -> None:
    async with connected(hub, "sse") as c:
        assert isinstance(c, SseClient)
        await c.send_audio_before_start(_rand(4000))
        await expect(c, "invalid_command")
        await c._post("/v1/sessions", content=_rand(4000), headers={"content-type": "application/json"})
        await expect(c, "invalid_command")


@case("sse-text-where-binary-expected")
async def _sse_text_audio(hub: HubProcess) -> None:
    async with connected(hub, "sse") as c:
        await started(c)
        await c._post(f"/v1/sessions/{c.session_id}/audio", content="odd", headers={"content-type": "text/plain"})
        await expect(c, "invalid_audio")


@case("grpc-audio-before-start")
async def _grpc_audio_first(hub: HubProcess) -> None:
    async with connected(hub, "grpc") as c:
        await c.send_audio(SILENCE)
        await expect(c, "invalid_command")


# -- oversized / deeply nested JSON ------------------------------------------------------------------
@case("websocket-10MB-text-frame")
async def _ws_big_text(hub: HubProcess) -> None:
    async with connected(hub, "websocket") as c:
        await c.ws.send(json.dumps({"type": "start", "language": "x" * BIG}))
        await expect(c, "payload_too_large")


@case("websocket-100k-nested-arrays")
async def _ws_nested(hub: HubProcess) -> None:
    async with connected(hub, "websocket") as c:
        await c.ws.send("[" * 100_000 + "]" * 100_000)
        await expect(c, "payload_too_large")
        await c.ws.send('{"type":"start","vad":' + "[" * 30_000 + "]" * 30_000 + "}")  # < 64 KiB
        await expect(c, "invalid_command")


@case("sse-100k-nested-arrays")
async def _sse_nested(hub: HubProcess) -> None:
    async with connected(hub, "sse") as c:
        await c._post("/v1/sessions", content=b"[" * 100_000 + b"]" * 100_000,
                      headers={"content-type": "application/json"})
        err = await c.next_error(15)
        assert err["code"] in ("invalid_command", "payload_too_large"), err
        await c._post("/v1/sessions", content=b'{"vad":' + b"[" * 20_000 + b"]" * 20_000 + b"}",
                      headers={"content-type": "application/json"})
        await expect(c, "invalid_command")


@case("sse-10MB-start-body")
async def _sse_big_start(hub: HubProcess) -> None:
    async with connected(hub, "sse") as c:
        await c._post("/v1/sessions", json={"language": "x" * BIG})
        await expect(c, "payload_too_large")


@case("socketio-deeply-nested-start")
async def _sio_nested(hub: HubProcess) -> None:
    nested: Any = []
    for _ in range(200):
        nested = [nested]
    async with connected(hub, "socketio") as c:
        assert await c.start({"audio": PCM16, "vad": nested}) is None
        await expect(c, "invalid_command")


# -- resume / seq abuse ----------------------------------------------------------------------------
for _t in ("websocket", "sse", "socketio"):
    @case(f"{_t}-resume-negative-seq")
    async def _resume_negative(hub: HubProcess, t: str = _t) -> None:
        async with connected(hub, t) as c:
            assert await c.start({"resume": {"session_id": "abc", "last_seq": -1}}) in (None, "abc")
            err = await expect(c, "invalid_command")
            assert "last_seq" in err["message"]
del _t


@case("grpc-resume-empty-session-id")
async def _grpc_resume_empty(hub: HubProcess) -> None:
    async with connected(hub, "grpc") as c:
        await c.start_again({"resume": {"session_id": "", "last_seq": 3}})
        await expect(c, "invalid_command")


@case("sse-bad-last-event-id")
async def _sse_last_event_id(hub: HubProcess) -> None:
    async with connected(hub, "sse") as c:
        sid = await started(c)
        # malformed: 400; a seq the session has not reached is a well-formed request its state refuses: 409
        for bad, status in (("abc", 400), ("-5", 400), ("99999999", 409)):
            r = await c.http.get(f"/v1/sessions/{sid}/events", headers={"Last-Event-ID": bad})
            assert r.status_code == status, (bad, r.status_code, r.text)
            assert r.json()["error"]["code"] == "invalid_command", r.text


@case("sse-unknown-session-routes")
async def _sse_unknown_routes(hub: HubProcess) -> None:
    async with httpx.AsyncClient(base_url=hub.http, timeout=15) as http:
        for method, path in (("GET", "/v1/sessions/nope/events"), ("POST", "/v1/sessions/nope/flush"),
                             ("POST", "/v1/sessions/nope/stop"), ("DELETE", "/v1/sessions/nope"),
                             ("POST", "/v1/sessions/nope/start")):
            r = await http.request(method, path)
            assert r.status_code == 404, (method, path, r.status_code, r.text)
            assert r.json()["error"]["code"] == "session_not_found", r.text


# -- REST uploads ----------------------------------------------------------------------------------
async def _rest(hub: HubProcess, path: str, expect_status: int, code: str, **kw: Any) -> None:
    async with httpx.AsyncClient(base_url=hub.http, timeout=60) as http:
        r = await http.post(path, **kw)
    assert r.status_code == expect_status, (path, r.status_code, r.text[:300])
    body = r.json()
    assert body["error"]["code"] == code and body["error"]["message"], body


@case("rest-garbage-multipart")
async def _rest_garbage(hub: HubProcess) -> None:
    await _rest(hub, "/v1/audio/transcriptions", 400, "invalid_command", content=_rand(5000),
                headers={"content-type": "multipart/form-data; boundary=xyzzy"})


@case("rest-multipart-unterminated")
async def _rest_unterminated(hub: HubProcess) -> None:
    body = (b"--xyzzy\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.wav\"\r\n"
            b"Content-Type: audio/wav\r\n\r\nRIFF....")
    await _rest(hub, "/v1/transcribe", 400, "invalid_command", content=body,
                headers={"content-type": "multipart/form-data; boundary=xyzzy"})


@case("rest-multipart-no-boundary")
async def _rest_no_boundary(hub: HubProcess) -> None:
    await _rest(hub, "/v1/audio/transcriptions", 400, "invalid_command", content=b"file=abc",
                headers={"content-type": "multipart/form-data"})


@case("rest-missing-file")
async def _rest_missing(hub: HubProcess) -> None:
    await _rest(hub, "/v1/audio/transcriptions", 400, "invalid_command", data={"model": "whisper-1"},
                files={"other": ("x.bin", b"123")})


@case("rest-random-bytes-file")
async def _rest_random(hub: HubProcess) -> None:
    await _rest(hub, "/v1/audio/transcriptions", 400, "invalid_audio",
                files={"file": ("a.webm", _rand(20_000), "audio/webm")})


@case("rest-truncated-flac-file")
async def _rest_truncated(hub: HubProcess) -> None:
    head = clip("en_jfk").path.read_bytes()[:200]
    await _rest(hub, "/v1/transcribe", 400, "invalid_audio", files={"file": ("a.flac", head, "audio/flac")})


@case("rest-empty-file")
async def _rest_empty(hub: HubProcess) -> None:
    await _rest(hub, "/v1/transcribe", 400, "invalid_audio", files={"file": ("a.wav", b"", "audio/wav")})


@case("rest-wrong-form-types")
async def _rest_types(hub: HubProcess) -> None:
    files = {"file": ("a.wav", SILENCE, "audio/wav")}
    await _rest(hub, "/v1/audio/transcriptions", 400, "invalid_command", files=files,
                data={"temperature": "hot", "response_format": "pdf"})


@case("rest-unknown-model")
async def _rest_model(hub: HubProcess) -> None:
    await _rest(hub, "/v1/audio/transcriptions", 404, "unknown_provider",
                files={"file": ("a.wav", SILENCE, "audio/wav")}, data={"model": "no-such-model"})


@case("rest-json-instead-of-multipart")
async def _rest_json(hub: HubProcess) -> None:
    await _rest(hub, "/v1/transcribe", 400, "invalid_command", json={"file": "aGVsbG8="})


@case("grpc-recognize-garbage")
async def _grpc_recognize(hub: HubProcess) -> None:
    import grpc

    from asrhub.wire import grpc_gen
    pb, _ = grpc_gen.load()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{hub.grpc_port}") as ch:
        call = ch.unary_unary("/asrhub.v1.AsrHub/Recognize", request_serializer=pb.RecognizeRequest.SerializeToString,
                              response_deserializer=pb.RecognizeResponse.FromString)
        for audio, code in ((_rand(10_000), "invalid_audio"), (b"", "invalid_audio")):
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await call(pb.RecognizeRequest(audio=audio), timeout=60)
            assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT, info.value
            trailers = dict(info.value.trailing_metadata() or ())
            assert trailers.get("asrhub-error-code") == code, trailers


# -- slow-loris SSE reader ---------------------------------------------------------------------------
@case("sse-slow-loris-reader")
async def _slow_loris(hub: HubProcess) -> None:
    """An events stream whose reader never reads must not hold up anybody else."""
    async with httpx.AsyncClient(base_url=hub.http, timeout=30) as http:
        r = await http.post("/v1/sessions", json={"audio": PCM16, "interim_results": True})
        assert r.status_code == 201, r.text
        sid = r.json()["session_id"]
        socks = []
        for _ in range(3):
            s = socket.socket()
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1024)
            s.setblocking(False)
            await asyncio.get_running_loop().sock_connect(s, ("127.0.0.1", hub.port))
            await asyncio.get_running_loop().sock_sendall(
                s, f"GET /v1/sessions/{sid}/events HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            socks.append(s)
        try:
            pcm = _speech()
            for i in range(0, len(pcm), 64_000):  # 2 s pieces as fast as the hub takes them
                ans = await http.post(f"/v1/sessions/{sid}/audio", content=pcm[i:i + 64_000],
                                      headers={"content-type": "application/octet-stream"})
                assert ans.status_code in (202, 400, 404), ans.text
            # meanwhile other sessions run normally
            t0 = time.monotonic()
            await asyncio.gather(*(normal_session(hub, t) for t in TRANSPORTS))
            assert time.monotonic() - t0 < 45
            await http.post(f"/v1/sessions/{sid}/stop")
        finally:
            for s in socks:
                s.close()


# -- a WebSocket / Socket.IO client that stops reading -----------------------------------------------
class RawWebSocket:
    """A WebSocket client on a bare TCP socket with a tiny receive buffer that reads only when asked.

    Client libraries read in the background whatever the application does; this one does not, so while
    it is not reading, the hub's writes back up at the TCP level, as with a stalled client.
    """

    def __init__(self, port: int) -> None:
        self.port = port
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connect: a small window
        self.sock.setblocking(False)
        self.buf = b""

    async def connect(self, path: str) -> None:
        loop = asyncio.get_running_loop()
        await loop.sock_connect(self.sock, ("127.0.0.1", self.port))
        key = base64.b64encode(os.urandom(16)).decode()
        await loop.sock_sendall(self.sock, (f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{self.port}\r\n"
                                            "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                                            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
        while b"\r\n\r\n" not in self.buf:
            await self._fill()
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        assert head.startswith(b"HTTP/1.1 101"), head

    async def _fill(self) -> None:
        data = await asyncio.get_running_loop().sock_recv(self.sock, 65536)
        if not data:
            raise EOFError("the hub closed the connection")
        self.buf += data

    async def _take(self, n: int) -> bytes:
        while len(self.buf) < n:
            await self._fill()
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    async def recv(self) -> str:
        """The next text message (pings are answered; the hub sends whole, unfragmented messages)."""
        while True:
            b0, b1 = await self._take(2)
            n = b1 & 0x7F
            if n >= 126:
                n = int.from_bytes(await self._take(2 if n == 126 else 8), "big")
            payload = await self._take(n)
            opcode = b0 & 0x0F
            if opcode == 0x8:
                raise EOFError("the hub closed the WebSocket")
            if opcode == 0x9:
                await self.send_many([payload], opcode=0xA)
            elif opcode == 0x1:
                return payload.decode()

    @staticmethod
    def frame(payload: bytes, opcode: int = 0x1) -> bytes:
        n = len(payload)
        size = bytes([0x80 | n]) if n < 126 else bytes([0x80 | 126]) + n.to_bytes(2, "big")
        assert n < 65536
        mask = os.urandom(4)
        return bytes([0x80 | opcode]) + size + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))

    async def send_many(self, payloads: list[bytes], opcode: int = 0x1) -> None:
        data = b"".join(self.frame(p, opcode) for p in payloads)
        await asyncio.get_running_loop().sock_sendall(self.sock, data)

    async def send(self, text: str) -> None:
        await self.send_many([text.encode()])

    def close(self) -> None:
        self.sock.close()


class StalledClient:
    """One session over WebSocket (`/v1/ws`) or Socket.IO (Engine.IO 4 on its websocket transport,
    namespace /asr) on a RawWebSocket: it starts a session, then sends commands without reading."""

    SIO = "42/asr,"

    def __init__(self, hub: HubProcess, transport: str) -> None:
        self.transport = transport
        self.ws = RawWebSocket(hub.port)

    async def next_event(self) -> dict[str, Any]:
        """The next session event (the `start` ack too, on Socket.IO)."""
        while True:
            msg = await self.ws.recv()
            if self.transport == "websocket":
                return dict(json.loads(msg))
            if msg == "2":  # engine.io ping
                await self.ws.send("3")
            elif msg.startswith(self.SIO):
                return dict(json.loads(msg[len(self.SIO):])[1])
            elif msg.startswith("43/asr,"):  # ack: 43/asr,<id>[answer]
                return {"type": "ack", **json.loads(msg[len("43/asr,"):].lstrip("0123456789"))[0]}

    async def start(self) -> str:
        body = {"audio": PCM16, "interim_results": False}
        if self.transport == "websocket":
            await self.ws.connect("/v1/ws")
            await self.ws.send(json.dumps({"type": "start", **body}))
        else:
            await self.ws.connect("/socket.io/?EIO=4&transport=websocket")
            assert (await self.ws.recv()).startswith("0{"), "engine.io open"
            await self.ws.send("40/asr,")
            while not (msg := await self.ws.recv()).startswith("40/asr,"):
                assert not msg.startswith("44"), msg  # connect_error
            await self.ws.send("42/asr,1" + json.dumps(["start", body]))
        while (ev := await self.next_event())["type"] not in ("session.started", "ack"):
            pass
        assert ev.get("session_id"), ev
        return str(ev["session_id"])

    async def flood(self, n: int) -> None:
        """n unknown commands; the hub answers each with an ~8 KB (non-fatal) error event of the session."""
        name = "x" * 8000
        cmd = json.dumps({"type": name}) if self.transport == "websocket" else self.SIO + json.dumps([name])
        await self.ws.send_many([cmd.encode()] * n)


async def metric(hub: HubProcess, prefix: str) -> float:
    async with httpx.AsyncClient(base_url=hub.http, timeout=10) as http:
        text = (await http.get("/metrics")).text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(prefix))


async def live_sessions(hub: HubProcess) -> float:
    """Live sessions by /readyz and by the asrhub_sessions gauge (every state but ended)."""
    async with httpx.AsyncClient(base_url=hub.http, timeout=10) as http:
        live = (await http.get("/readyz")).json()["sessions"]
    gauge = await metric(hub, "asrhub_sessions{") - await metric(hub, 'asrhub_sessions{state="ended"}')
    return max(live, gauge)


#: The access log lines of live_sessions' own requests (they do not wake the check again).
OWN_REQUESTS = ("GET /readyz", "GET /metrics")


def no_live_sessions(hub: HubProcess) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return await live_sessions(hub) == 0
    return check


@pytest.fixture(scope="module")
def small_buffer_hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HubProcess]:
    """limits.max_events_buffered at its minimum (64) keeps the slow-reader tests short."""
    env = {"ASRHUB_LIMITS__MAX_EVENTS_BUFFERED": "64", "ASRHUB_LIMITS__RESUME_WINDOW_S": "1",
           "ASRHUB_LIMITS__IDLE_TIMEOUT_S": "30"}
    yield from running(base_config(), tmp_path_factory.mktemp("slow-reader"), env=env)


@pytest.mark.parametrize("transport", ["websocket", "socketio"])
async def test_slow_reader_is_cut_off(small_buffer_hub: HubProcess, transport: str) -> None:
    """A client that stops reading while its session produces events is ended with the fatal `slow_consumer`
    error ("client is not reading events") once limits.max_events_buffered events wait for it — on
    Socket.IO too, although python-engineio's own send queue is unbounded (the hub must not run ahead
    of what the client takes). Meanwhile other sessions run normally, and afterwards no session is left.
    """
    hub = small_buffer_hub
    rogue = StalledClient(hub, transport)
    try:
        async with asyncio.timeout(45):
            sid = await rogue.start()
            cut = 'asrhub_errors_total{code="slow_consumer"}'
            before = await metric(hub, cut)
            sent = 0  # until the hub reports the cut; 2500 events of 8 KB are ~7 times the socket buffers
            while await metric(hub, cut) == before:
                assert sent < 2500, f"{transport}: the hub keeps taking events for a client that does not read"
                await rogue.flood(50)
                sent += 50
            t0 = time.monotonic()
            await asyncio.gather(normal_session(hub, "socketio"), normal_session(hub, "websocket"))
            assert time.monotonic() - t0 < 15
            # now read: what the hub sent before the cut, then the fatal error, then session.ended
            events = [await rogue.next_event()]
            while events[-1]["type"] != "session.ended":
                events.append(await rogue.next_event())
        fatal = [e for e in events if e["type"] == "error" and e["fatal"]]
        assert len(fatal) == 1, fatal
        assert fatal[0]["code"] == "slow_consumer" and "not reading" in fatal[0]["message"], fatal
        assert fatal[0]["session_id"] == sid and events[-1]["reason"] == "error", events[-1]
        mine = [e for e in events if e["session_id"] == sid]  # not the errors of commands after the end
        assert mine[-2] is fatal[0], [e["type"] for e in mine[-3:]]
    finally:
        rogue.ws.close()
    # each session's end is logged ("session ended"): the check runs after each line the hub logs
    await until(no_live_sessions(hub), FileWatch(hub.log, own=OWN_REQUESTS), timeout=10, what="no live sessions")
    assert hub.alive()


async def test_socketio_client_that_never_reads_is_disconnected(small_buffer_hub: HubProcess) -> None:
    """Without a session the hub's answers (acks, `error` events) go straight to engine.io's queue; a
    Socket.IO client that floods commands and reads nothing has its connection closed once
    SEND_QUEUE_LIMIT (1024) packets wait for it, instead of the queue growing while it sends."""
    hub = small_buffer_hub
    ws = RawWebSocket(hub.port)
    try:
        async with asyncio.timeout(60):
            await ws.connect("/socket.io/?EIO=4&transport=websocket")
            assert (await ws.recv()).startswith("0{"), "engine.io open"
            await ws.send("40/asr,")
            while not (await ws.recv()).startswith("40/asr,"):
                pass
            # unknown commands with ack ids, each answered by an ~8 KB error event and an ack; no reading
            name = "x" * 8000
            for i in range(0, 1600, 100):
                await ws.send_many([f"42/asr,{n}{json.dumps([name])}".encode() for n in range(i, i + 100)])
            # now read what was queued: it must end with the hub closing the connection
            with pytest.raises(EOFError):
                while True:
                    if await ws.recv() == "2":
                        await ws.send("3")
    finally:
        ws.close()
    assert hub.alive()
    await normal_session(hub, "socketio")


_SPEECH: list[bytes] = []


def _speech() -> bytes:
    if not _SPEECH:
        from tests.support import load_pcm16
        _SPEECH.append(load_pcm16(clip("en_jfk").path).tobytes())
    return _SPEECH[0]


# ---------------------------------------------------------------------------------------------
async def normal_session(hub: HubProcess, transport: str) -> None:
    async with connected(hub, transport) as c:
        await started(c)
        for _ in range(5):
            await c.send_audio(SILENCE)
        await c.stop()
        events = await c.wait_ended(60)
        assert events[0]["type"] == "session.started" and events[-1]["type"] == "session.ended", c.types()
        assert events[-1]["reason"] == "stop", events[-1]
        assert not [e for e in events if e["type"] == "error"], events


@pytest.mark.parametrize("name", list(CASES))
async def test_hostile(hostile_hub: HubProcess, name: str) -> None:
    await asyncio.wait_for(CASES[name](hostile_hub), 90)
    assert hostile_hub.alive(), hostile_hub.log.read_text()[-3000:]


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_zz_still_serving(hostile_hub: HubProcess, transport: str) -> None:
    await normal_session(hostile_hub, transport)


async def test_zz_no_session_leaks(hostile_hub: HubProcess) -> None:
    """Every hostile session is gone within the resume (1 s) / idle (3 s) windows."""
    seen: list[tuple[Any, float]] = []
    async with httpx.AsyncClient(base_url=hostile_hub.http, timeout=10) as http:
        async def gone() -> bool:
            live = (await http.get("/readyz")).json()["sessions"]
            metrics = (await http.get("/metrics")).text
            gauge = sum(float(line.rsplit(" ", 1)[1]) for line in metrics.splitlines()
                        if line.startswith("asrhub_sessions{") and 'state="ended"' not in line)
            seen.append((live, gauge))
            return live == 0 and gauge == 0

        try:  # checked after each line the hub logs (each session's end is logged)
            await until(gone, FileWatch(hostile_hub.log, own=OWN_REQUESTS), timeout=15, what="no live sessions")
        except AssertionError:
            raise AssertionError(f"sessions still live: readyz, metrics {seen[-1]}") from None
    assert hostile_hub.alive()
    crashes = [line for line in hostile_hub.log.read_text().splitlines() if " ERROR asrhub" in line]
    assert not crashes, crashes  # log.exception: a request the hub did not expect
