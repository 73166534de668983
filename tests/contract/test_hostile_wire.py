"""Issue 24: hostile wire-level cases. A Socket.IO polling error answered to a client that accepts gzip
is a body its headers describe (it said gzip over plain JSON, and clients failed to decode it); a
WebSocket text frame that is not UTF-8 gets a typed error and the close 1007, and no ERROR in the log."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosedError
from websockets.frames import Frame, Opcode

from tests.contract.clients import PCM16
from tests.support import HubProcess

LONG_SID = "a" * 1500  # its "Invalid session <sid>" answer is over Engine.IO's compression threshold


@pytest.mark.parametrize("encoding", ["gzip", "deflate", "gzip, deflate, br", "identity"])
@pytest.mark.parametrize("query", [f"sid={LONG_SID}", "sid=short", f"sid=x&t={'b' * 3000}"])
async def test_socketio_polling_errors_match_their_headers(hub: HubProcess, encoding: str, query: str) -> None:
    async with httpx.AsyncClient(base_url=hub.http, timeout=10) as http:
        r = await http.get(f"/socket.io/?EIO=4&transport=polling&{query}", headers={"Accept-Encoding": encoding})
        body = r.json()  # decoded as its Content-Encoding says (httpx raises on a body that is not)
    assert r.status_code == 400, r.text
    assert r.headers["content-type"] == "application/json"
    assert body["error"]["code"] == "invalid_command", body
    assert "Invalid session" in body["error"]["message"], body


def text_frame(ws: ClientConnection, payload: bytes) -> None:
    """A text frame with these bytes as they are (the client library would refuse to send non-UTF-8)."""
    ws.protocol.send_frame(Frame(Opcode.TEXT, payload))
    ws.transport.write(b"".join(ws.protocol.data_to_send()))


async def refusal(ws: ClientConnection) -> tuple[list[dict[str, Any]], int | None]:
    """What the hub sends after the bad frame: its messages until it closes, and the close code."""
    got: list[dict[str, Any]] = []
    with pytest.raises(ConnectionClosedError):
        while True:
            msg = await ws.recv()
            if isinstance(msg, str) and msg in ("2", "3"):  # Engine.IO ping/pong
                continue
            got.append(json.loads(msg))
    return got, ws.close_code


@pytest.mark.parametrize("payload", [b"\xff\xfe", b'{"type": "stop"}\xc3', b"\xed\xa0\x80"])  # a surrogate, too
async def test_invalid_utf8_text_frame_is_a_typed_error(hub: HubProcess, payload: bytes) -> None:
    log_from = hub.log.stat().st_size
    async with connect(hub.ws) as ws:  # before any session
        text_frame(ws, payload)
        got, code = await refusal(ws)
    assert code == 1007 and len(got) == 1, (code, got)
    assert got[0]["type"] == "error" and got[0]["code"] == "invalid_command" and got[0]["fatal"], got
    assert "UTF-8" in got[0]["message"]

    async with connect(hub.ws) as ws:  # in a session: it is detached (the client may resume it)
        await ws.send(json.dumps({"type": "start", "audio": PCM16}))
        started = json.loads(await ws.recv())
        await ws.send(b"\0" * 3200)
        text_frame(ws, payload)
        got, code = await refusal(ws)
    assert code == 1007 and got[-1]["code"] == "invalid_command", got
    async with connect(hub.ws) as ws:
        await ws.send(json.dumps({"type": "start", "resume": {"session_id": started["session_id"], "last_seq": 0}}))
        assert json.loads(await ws.recv())["session_id"] == started["session_id"]
        await ws.send(json.dumps({"type": "stop"}))

    async with connect(hub.http.replace("http", "ws") + "/v1/realtime?intent=transcription") as ws:
        await ws.recv()  # its session.created
        text_frame(ws, payload)
        got, code = await refusal(ws)
    assert code == 1007 and got[-1]["type"] == "error", got
    assert got[-1]["error"]["code"] == "invalid_command" and got[-1]["error"]["type"] == "invalid_request_error"

    async with connect(hub.http.replace("http", "ws") + "/socket.io/?EIO=4&transport=websocket") as ws:
        assert str(await ws.recv()).startswith("0")  # Engine.IO's open packet
        text_frame(ws, payload)
        got, code = await refusal(ws)  # Engine.IO has no error event of ours: the close says it
    assert code == 1007 and got == [], got

    log = hub.log.read_bytes()[log_from:].decode(errors="replace")
    assert " ERROR " not in log and "Traceback" not in log, log[-3000:]
