"""Issue 15 item 6: asrhub.client against a real hub, over every transport, with real speech.

Each transport streams a clip given a different way (a file path sent as-is, a file's bytes, raw PCM
bytes, an async iterator of PCM chunks) and the finals must match the reference (WER). The resume test
cuts the client's TCP connection mid-stream (a relay between client and hub is reset under it) and the
application must still see events 1..N exactly once, ending with session.ended."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from asrhub.client import (
    TRANSPORTS,
    HubRequestError,
    SessionEnded,
    SessionStarted,
    StartSession,
    StreamingClient,
    SyncClient,
    TranscriptFinal,
    WebSocketClient,
    connect,
)
from asrhub.core.commands import ResumeSpec
from asrhub.core.events import Event
from tests.client.proxy import TcpProxy
from tests.support import HubProcess, load_pcm16, wer

DATA = Path(__file__).resolve().parents[1] / "data" / "speech"
FLAC = DATA / "en_libri_1089-134691-0001.flac"
FLAC_TEXT = "FOR A FULL HOUR HE HAD PACED UP AND DOWN WAITING BUT HE COULD WAIT NO LONGER"
WAV = DATA / "en_libri_1221-135766-0002.wav"
WAV_TEXT = "YET THESE THOUGHTS AFFECTED HESTER PRYNNE LESS WITH HOPE THAN APPREHENSION"
LONG = DATA / "en_libri_2412-153948-0000.flac"
LONG_TEXT = ("IF THE READER WILL EXCUSE ME I WILL SAY NOTHING OF MY ANTECEDENTS NOR OF THE CIRCUMSTANCES WHICH LED ME "
             "TO LEAVE MY NATIVE COUNTRY THE NARRATIVE WOULD BE TEDIOUS TO HIM AND PAINFUL TO MYSELF")


def client_for(transport: str, hub: HubProcess, port: int | None = None, **kw: object) -> StreamingClient:
    if transport == "grpc":
        return connect("grpc", f"127.0.0.1:{port or hub.grpc_port}", **kw)
    return connect(transport, f"http://127.0.0.1:{port or hub.port}", **kw)


def hub_port(transport: str, hub: HubProcess) -> int:
    return hub.grpc_port if transport == "grpc" else hub.port


def check_session(events: list[Event]) -> str:
    """One whole session, each event once and in order; its finals' text."""
    assert isinstance(events[0], SessionStarted), events[0]
    assert isinstance(events[-1], SessionEnded) and events[-1].reason == "stop", events[-1]
    assert [e.seq for e in events] == list(range(1, len(events) + 1)), [(e.type, e.seq) for e in events]
    assert len({e.session_id for e in events}) == 1
    return " ".join(e.text for e in events if isinstance(e, TranscriptFinal))


async def pcm_chunks(pcm: bytes, size: int = 3200) -> AsyncIterator[bytes]:
    for i in range(0, len(pcm), size):
        yield pcm[i:i + size]


@pytest.mark.parametrize("transport, given", [("websocket", "path"), ("sse", "file bytes"),
                                              ("socketio", "async iterator"), ("grpc", "raw pcm")])
async def test_stream_real_speech(hub: HubProcess, transport: str, given: str) -> None:
    client = client_for(transport, hub)
    assert client.transport == transport and type(client) is TRANSPORTS[transport]
    if given == "path":  # a FLAC file, sent as it is: the hub decodes it
        events = [ev async for ev in client.stream(FLAC, language="en")]
        assert events[0].audio.encoding == "flac"  # type: ignore[attr-defined]
        ref = FLAC_TEXT
    elif given == "file bytes":  # a WAV file's bytes: recognised by its header
        events = [ev async for ev in client.stream(WAV.read_bytes(), language="en", realtime=4.0)]
        assert events[0].audio.encoding == "wav"  # type: ignore[attr-defined]
        ref = WAV_TEXT
    elif given == "async iterator":  # chunks from an async generator, declared as 16 kHz pcm_s16le
        pcm = load_pcm16(WAV).tobytes()
        events = [ev async for ev in client.stream(pcm_chunks(pcm), StartSession(language="en"))]
        assert events[0].audio.encoding == "pcm_s16le"  # type: ignore[attr-defined]
        ref = WAV_TEXT
    else:  # raw PCM bytes, paced at 4x real time, word timestamps asked
        pcm = load_pcm16(FLAC).tobytes()
        events = [ev async for ev in client.stream(pcm, language="en", word_timestamps=True, realtime=4.0)]
        words = [w for e in events if isinstance(e, TranscriptFinal) for w in e.words or []]
        assert len(words) >= 10 and all(w.end_ms >= w.start_ms for w in words)
        ref = FLAC_TEXT
    text = check_session(events)
    assert wer([ref], [text]) < 0.2, (transport, text)


@pytest.mark.parametrize("transport", sorted(TRANSPORTS))
async def test_resume_after_the_socket_drops(hub: HubProcess, transport: str) -> None:
    """The connection is reset under the client at the first speech.started, while audio still flows;
    the client resumes and the application sees every event exactly once."""
    proxy = await TcpProxy(hub_port(transport, hub)).start()
    try:
        client = client_for(transport, hub, proxy.port, reconnect_delay_s=0.05)
        events: list[Event] = []
        pcm = load_pcm16(LONG).tobytes()
        async for ev in client.stream(pcm, language="en", realtime=2.0):
            events.append(ev)
            if ev.type == "speech.started" and not proxy.severed:
                assert proxy.sever() >= 1
        assert proxy.severed >= 1 and client.reconnects == 1, (proxy.severed, client.reconnects)
        text = check_session(events)
        # audio already inside the cut connection is lost (a few 100 ms chunks at most)
        assert wer([LONG_TEXT], [text]) < 0.3, text
        assert sum(isinstance(e, SessionStarted) for e in events) == 1
    finally:
        await proxy.close()


@pytest.mark.parametrize("transport", sorted(TRANSPORTS))
async def test_refusals_are_typed(hub: HubProcess, transport: str) -> None:
    client = client_for(transport, hub)
    with pytest.raises(HubRequestError) as exc:
        _ = [ev async for ev in client.stream(b"\x00" * 3200, provider="no-such-provider")]
    assert exc.value.code == "unknown_provider" and "no-such-provider" in exc.value.message
    with pytest.raises(HubRequestError) as exc:
        s = await client.session(resume=ResumeSpec(session_id="0" * 32, last_seq=0))
        _ = [ev async for ev in s]
    assert exc.value.code == "session_not_found", exc.value


async def test_session_api_push_to_talk(hub: HubProcess) -> None:
    """The lower-level session(): send, flush (a final now, session stays open), more audio, stop."""
    client = WebSocketClient(hub.http)
    pcm = load_pcm16(WAV).tobytes()
    async with await client.session(language="en", vad={"enabled": False}) as s:
        assert s.started is not None and s.session_id == s.started.session_id
        for i in range(0, len(pcm), 6400):
            await s.send(pcm[i:i + 6400])
        await s.flush()
        first = None
        async for ev in s:
            if isinstance(ev, TranscriptFinal):
                first = ev
                break
        assert first is not None and wer([WAV_TEXT], [first.text]) < 0.2, first
        await s.send(load_pcm16(FLAC).tobytes())
        await s.stop()
        rest = [ev async for ev in s]
    finals = [e for e in rest if isinstance(e, TranscriptFinal)]
    assert isinstance(rest[-1], SessionEnded) and finals
    assert wer([FLAC_TEXT], [" ".join(f.text for f in finals)]) < 0.2


@pytest.mark.parametrize("transport", sorted(TRANSPORTS))
async def test_keepalive_holds_a_paused_session(hub: HubProcess, transport: str) -> None:
    """idle_timeout_s 1.5 and no audio for 3 s: keepalive every 0.4 s keeps the session until `stop`."""
    client = client_for(transport, hub)
    async with await client.session(idle_timeout_s=1.5) as s:
        await s.send(b"\x00" * 3200)
        loop = asyncio.get_running_loop()
        until = loop.time() + 3.0
        while loop.time() < until:
            await s.keepalive()
            await asyncio.sleep(0.4)  # the pause itself is what is tested
        await s.stop()
        events = [ev async for ev in s]
    assert isinstance(events[-1], SessionEnded) and events[-1].reason == "stop", events[-1]
    assert not [e for e in events if e.type == "error"], events


async def test_a_failing_audio_source_surfaces_at_once(hub: HubProcess) -> None:
    """The application's audio iterator raising mid-stream ends the iteration with that error (not an idle
    timeout later)."""
    async def broken() -> AsyncIterator[bytes]:
        yield b"\x00" * 3200
        raise OSError("microphone unplugged")

    t0 = asyncio.get_running_loop().time()
    with pytest.raises(OSError, match="microphone unplugged"):
        _ = [ev async for ev in WebSocketClient(hub.http).stream(broken())]
    assert asyncio.get_running_loop().time() - t0 < 10


def test_sync_client(hub: HubProcess) -> None:
    with SyncClient(WebSocketClient(hub.http)) as c:
        text = c.transcribe(str(FLAC), language="en")
        assert wer([FLAC_TEXT], [text]) < 0.2, text
        types = [ev.type for ev in c.stream(WAV, language="en")]
    assert types[0] == "session.started" and types[-1] == "session.ended" and "transcript.final" in types
