"""A WebSocket to a path the hub does not serve is answered 404 with the contract body, exactly as an HTTP
request to an unknown path (it was a bare 403, which points a stranger at keys or Origin); the hub's own
WebSocket routes (/v1/ws, Socket.IO's, /v1/realtime, /v1/listen) still open."""

from __future__ import annotations

import json

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from tests.support import HubProcess


@pytest.mark.parametrize("path", ["/ws", "/v1/nope", "/v1/ws/", "/v1/ws/extra", "/asr"])
async def test_an_unknown_websocket_path_is_404_with_the_contract_body(hub: HubProcess, path: str) -> None:
    url = hub.http.replace("http", "ws", 1) + path
    with pytest.raises(InvalidStatus) as refused:
        async with connect(url, open_timeout=10):
            pass
    response = refused.value.response
    assert response.status_code == 404, (response.status_code, bytes(response.body))
    assert response.headers["Content-Type"] == "application/json"
    body = json.loads(bytes(response.body))
    assert body == {"error": {"code": "not_found", "message": f"no route {path}"}}, body
    async with httpx.AsyncClient(base_url=hub.http, timeout=10) as http:  # what HTTP answers the same path
        assert (await http.get(path)).json() == body


@pytest.mark.parametrize("path", ["/v1/ws", "/socket.io/?EIO=4&transport=websocket",
                                  "/v1/realtime?intent=transcription", "/v1/listen?encoding=linear16&sample_rate=16000"])
async def test_the_hubs_own_websockets_still_open(hub: HubProcess, path: str) -> None:
    async with connect(hub.http.replace("http", "ws", 1) + path, open_timeout=10) as ws:
        assert ws.response is not None and ws.response.status_code == 101
