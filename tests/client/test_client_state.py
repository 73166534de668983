"""asrhub.client's session state against a real hub on loopback: every event the hub sends parses into its
typed model and back to the same JSON; a session whose connection is cut keeps its id, its last seq and the
count of its resumes; a session that cannot reach the hub again ends in ResumeFailed (connection_lost),
one whose hub no longer has it in ResumeFailed with the hub's code."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from asrhub.client import TRANSPORTS, Event, SessionEnded, parse_event
from asrhub.client.errors import HubRequestError, ResumeFailed
from tests.client.proxy import TcpProxy
from tests.client.test_client import LONG, WAV, client_for, hub_port
from tests.support import HubProcess, load_pcm16, paced, ws_stream


async def test_every_event_of_a_real_session_parses_to_its_model_and_back(hub: HubProcess) -> None:
    pcm = load_pcm16(WAV).tobytes()
    events = await ws_stream(hub.ws, pcm, start={"word_timestamps": True, "language": "en"}, realtime=2.0)
    kinds = {e["type"] for e in events}
    assert {"session.started", "speech.started", "transcript.final", "speech.ended", "session.ended"} <= kinds, kinds
    for raw in events:
        ev = parse_event(raw)
        assert type(ev) is not Event, raw  # a known type: its own model
        assert ev.to_dict() == {k: v for k, v in raw.items() if v is not None}, raw


async def started_through(proxy: TcpProxy, transport: str, hub: HubProcess, **kw: Any) -> Any:
    client = client_for(transport, hub, proxy.port, reconnect_delay_s=0.01, **kw)
    return client, await client.session(language="en")


@pytest.mark.parametrize("transport", sorted(TRANSPORTS))
async def test_a_cut_connection_keeps_the_sessions_id_and_seq(hub: HubProcess, transport: str) -> None:
    proxy = await TcpProxy(hub_port(transport, hub)).start()
    try:
        client, s = await started_through(proxy, transport, hub)
        async with s:
            sid, first_seq = s.session_id, s.last_seq
            assert sid and first_seq == 1  # session.started
            pcm = load_pcm16(WAV).tobytes()
            half = len(pcm) // 2 // 3200 * 3200
            async for piece in paced(pcm[:half], 3200, realtime=4.0):  # a microphone's pace, 4x
                await s.send(piece)
            assert proxy.sever() >= 1
            async for piece in paced(pcm[half:], 3200, realtime=4.0):  # on the resumed connection
                await s.send(piece)
            await s.stop()
            events = [ev async for ev in s]
        assert s.reconnects == 1 and client.reconnects == 1 and s.session_id == sid
        assert [e.seq for e in events] == list(range(1, len(events) + 1))  # each once, in order
        assert any(e.type == "transcript.final" for e in events)  # the audio after the cut reached the hub
        assert s.last_seq == events[-1].seq and isinstance(s.ended, SessionEnded) and s.ended.reason == "stop"
    finally:
        await proxy.close()


@pytest.mark.parametrize("transport", sorted(TRANSPORTS))
async def test_no_way_back_to_the_hub_is_resume_failed_connection_lost(hub: HubProcess, transport: str) -> None:
    proxy = await TcpProxy(hub_port(transport, hub)).start()
    client, s = await started_through(proxy, transport, hub, max_reconnects=2)
    async with s:
        await proxy.close()  # the path is gone: every reconnect is refused
        with pytest.raises(ResumeFailed) as exc:
            _ = [ev async for ev in s]
    assert exc.value.code == "connection_lost" and not isinstance(exc.value.cause, HubRequestError)
    # (a gRPC channel connects lazily: its tries open a call, which then fails, and count as resumes)
    assert "2 reconnects failed" in exc.value.message and client.reconnects == (2 if transport == "grpc" else 0)
    with pytest.raises(ResumeFailed):  # the session is over for the application: sending says so too
        await s.send(b"\x00" * 3200)


@pytest.mark.parametrize("transport", sorted(TRANSPORTS))
async def test_a_session_the_hub_no_longer_has_is_resume_failed_with_its_code(hub: HubProcess, transport: str) -> None:
    """The connection drops, the session is deleted meanwhile (DELETE /v1/sessions/{id}), and the resume is
    refused with session_not_found."""
    proxy = await TcpProxy(hub_port(transport, hub)).start()
    try:  # reconnects go on (every 2 s at most) until the relay takes connections again
        client, s = await started_through(proxy, transport, hub, max_reconnects=60)
        async with s:
            await s.send(load_pcm16(LONG).tobytes()[:32000])
            assert proxy.server is not None
            proxy.server.close()  # no new connections until the session is gone
            await proxy.server.wait_closed()
            proxy.sever()
            async with httpx.AsyncClient(base_url=hub.http) as http:
                r = await http.delete(f"/v1/sessions/{s.session_id}")
                assert r.status_code == 204, r.text
            proxy.server = await asyncio.start_server(proxy._handle, "127.0.0.1", proxy.port)
            with pytest.raises(ResumeFailed) as exc:
                _ = [ev async for ev in s]
        assert exc.value.code == "session_not_found", exc.value
    finally:
        await proxy.close()
