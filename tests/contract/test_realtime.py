"""Issue 15 item 2: OpenAI Realtime transcription on /v1/realtime, driven by the official `openai`
client's `client.realtime.connect(...)` on real speech; every server event is parsed by the SDK."""

from __future__ import annotations

import asyncio
import audioop
import base64
from typing import Any

import numpy as np
import openai
import pytest
from openai.types import realtime as rt  # the SDK's own event types parse what the hub sends

from tests.support import HubProcess, clip, load_native, wer

Completed = rt.ConversationItemInputAudioTranscriptionCompletedEvent
Delta = rt.ConversationItemInputAudioTranscriptionDeltaEvent
CLIPS = [clip("en_libri_1089-134691"), clip("en_ljspeech_LJ001-0001"), clip("en_libri_1221-135766")]


def pcm(c: Any, rate: int) -> bytes:
    import soxr
    x, sr = load_native(c.path)
    mono = x.mean(axis=1) if x.ndim == 2 else x
    y = soxr.resample(mono, sr, rate)
    return np.clip(np.rint(y * 32767), -32768, 32767).astype("<i2").tobytes()


def client(hub: HubProcess, key: str = "x") -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=hub.http + "/v1", api_key=key, max_retries=0)


async def send_audio(conn: Any, data: bytes, chunk: int = 9600) -> None:
    for i in range(0, len(data), chunk):
        await conn.input_audio_buffer.append(audio=base64.b64encode(data[i:i + chunk]).decode())


async def recv_until(conn: Any, want: type, n: int = 1, timeout: float = 30) -> list[Any]:  # noqa: ASYNC109
    """Every event until the n-th of type `want` (all parsed by the SDK)."""
    seen: list[Any] = []
    try:
        async with asyncio.timeout(timeout):
            while sum(isinstance(e, want) for e in seen) < n:
                seen.append(await conn.recv())
    except TimeoutError:
        raise AssertionError(f"no {n} x {want.__name__} in {timeout} s; got {[e.type for e in seen][:20]} {seen[:1]}") from None
    return seen


SESSION = {"type": "transcription", "audio": {"input": {
    "format": {"type": "audio/pcm", "rate": 24000}, "transcription": {"model": "gpt-4o-transcribe", "language": "en"},
    "turn_detection": {"type": "server_vad", "silence_duration_ms": 500, "prefix_padding_ms": 300}}}}


async def test_server_vad_transcribes_real_speech(hub: HubProcess) -> None:
    async with client(hub).realtime.connect(extra_query={"intent": "transcription"},
                                            model="gpt-4o-transcribe") as conn:
        created = await conn.recv()
        assert isinstance(created, rt.SessionCreatedEvent) and created.session.type == "transcription"
        await conn.session.update(session=SESSION)  # type: ignore[arg-type]
        updated = await conn.recv()
        assert isinstance(updated, rt.SessionUpdatedEvent)
        td = updated.session.audio.input.turn_detection  # type: ignore[union-attr]
        assert td is not None and td.silence_duration_ms == 500
        silence = bytes(24000 * 2)  # 1 s between the clips
        audio = b"".join(pcm(c, 24000) + silence for c in CLIPS)
        await send_audio(conn, audio)
        events = await recv_until(conn, Completed, n=len(CLIPS))
    done = [e for e in events if isinstance(e, Completed)]
    hyp = [e.transcript for e in done]
    assert wer([c.transcript for c in CLIPS], hyp) < 0.15, hyp
    for e in done:  # per item: started, stopped, committed, at least one delta, all before completed
        before = events[:events.index(e)]
        kinds = [type(x) for x in before if getattr(x, "item_id", None) == e.item_id]
        assert kinds[:3] == [rt.InputAudioBufferSpeechStartedEvent, rt.InputAudioBufferSpeechStoppedEvent,
                             rt.InputAudioBufferCommittedEvent], kinds
        deltas = [x.delta for x in before if isinstance(x, Delta) and x.item_id == e.item_id]
        assert deltas and "".join(deltas) == e.transcript
    starts = [e.audio_start_ms for e in events if isinstance(e, rt.InputAudioBufferSpeechStartedEvent)]
    assert starts == sorted(starts) and starts[1] > CLIPS[0].seconds * 1000


async def test_manual_commit_and_beta_session_form(hub: HubProcess) -> None:
    c = CLIPS[0]
    async with client(hub).realtime.connect(extra_query={"intent": "transcription"}) as conn:
        assert isinstance(await conn.recv(), rt.SessionCreatedEvent)
        await conn.send({"type": "transcription_session.update",  # the beta form
                         "session": {"input_audio_format": "pcm16", "turn_detection": None,
                                     "input_audio_transcription": {"model": "whisper-1", "language": "en"}}})
        upd = await conn.recv_bytes()
        assert b'"transcription_session.updated"' in upd
        await send_audio(conn, pcm(c, 24000))
        await conn.input_audio_buffer.commit()
        events = await recv_until(conn, Completed)
    assert not any(isinstance(e, rt.InputAudioBufferSpeechStartedEvent) for e in events)  # no VAD in manual mode
    committed = next(e for e in events if isinstance(e, rt.InputAudioBufferCommittedEvent))
    done = events[-1]
    assert isinstance(done, Completed) and done.item_id == committed.item_id
    assert events.index(committed) < events.index(done)
    assert any(isinstance(e, Delta) for e in events)
    assert wer([c.transcript], [done.transcript]) < 0.2, done.transcript


async def test_silence_committed_gets_an_empty_completed(hub: HubProcess) -> None:
    """No final is emitted for an utterance without text; the item is still completed, with "" (OpenAI's
    behaviour), and the next item transcribes normally."""
    async with client(hub).realtime.connect(extra_query={"intent": "transcription"}) as conn:
        await conn.recv()
        await conn.session.update(session={"type": "transcription", "audio": {"input": {  # type: ignore[arg-type]
            "turn_detection": None}}})
        await conn.recv()
        hiss = np.random.default_rng(0).normal(0, 1000, 24000 * 2)  # 2 s of noise: Whisper decodes it to ""
        await send_audio(conn, hiss.astype("<i2").tobytes())
        await conn.input_audio_buffer.commit()
        first = await recv_until(conn, Completed)
        await send_audio(conn, pcm(CLIPS[0], 24000))
        await conn.input_audio_buffer.commit()
        second = await recv_until(conn, Completed)
    silent = first[-1]
    committed = next(e for e in first if isinstance(e, rt.InputAudioBufferCommittedEvent))
    assert silent.item_id == committed.item_id and silent.transcript == ""
    assert second[-1].item_id != silent.item_id and wer([CLIPS[0].transcript], [second[-1].transcript]) < 0.2


async def test_clear_drops_uncommitted_audio(hub: HubProcess) -> None:
    keep, drop = CLIPS[0], CLIPS[1]
    async with client(hub).realtime.connect(extra_query={"intent": "transcription"}) as conn:
        await conn.recv()
        await conn.session.update(session={"type": "transcription", "audio": {"input": {  # type: ignore[arg-type]
            "turn_detection": None}}})
        await conn.recv()
        await send_audio(conn, pcm(drop, 24000))
        await conn.input_audio_buffer.clear()
        cleared = await recv_until(conn, rt.InputAudioBufferClearedEvent)
        await send_audio(conn, pcm(keep, 24000))
        await conn.input_audio_buffer.commit()
        events = cleared + await recv_until(conn, Completed)
    done = [e for e in events if isinstance(e, Completed)]
    assert len(done) == 1 and wer([keep.transcript], [done[0].transcript]) < 0.2, done[0].transcript


@pytest.mark.parametrize("fmt,encode", [("audio/pcmu", audioop.lin2ulaw), ("audio/pcma", audioop.lin2alaw)])
async def test_g711_telephony_audio(hub: HubProcess, fmt: str, encode: Any) -> None:
    c = CLIPS[1]
    async with client(hub).realtime.connect(extra_query={"intent": "transcription"}) as conn:
        await conn.recv()
        await conn.session.update(session={"type": "transcription", "audio": {"input": {  # type: ignore[arg-type]
            "format": {"type": fmt}, "turn_detection": None}}})
        assert isinstance(await conn.recv(), rt.SessionUpdatedEvent)
        await send_audio(conn, encode(pcm(c, 8000), 2), chunk=1600)
        await conn.input_audio_buffer.commit()
        events = await recv_until(conn, Completed)
    assert wer([c.transcript], [events[-1].transcript]) < 0.2, events[-1].transcript


async def test_bad_events_get_error_and_connection_survives(hub: HubProcess) -> None:
    async with client(hub).realtime.connect(extra_query={"intent": "transcription"}) as conn:
        await conn.recv()
        bad: list[dict[str, Any]] = [
            {"type": "response.create", "event_id": "e1"},
            {"type": "input_audio_buffer.append", "audio": "***not base64***", "event_id": "e2"},
            {"type": "input_audio_buffer.commit", "event_id": "e3"},  # server_vad: commit is not for that mode
            {"type": "session.update", "session": {"type": "realtime"}, "event_id": "e4"},
            {"type": "session.update", "session": {"type": "transcription", "audio": {"input": {
                "transcription": {"model": "no-such-model"}}}}, "event_id": "e5"},
            {"type": "session.update", "session": {"type": "transcription", "audio": {"input": {
                "format": {"type": "audio/pcm", "rate": 16000}}}}, "event_id": "e6"},
        ]
        for ev in bad:
            await conn.send(ev)  # type: ignore[arg-type]
            err = await conn.recv()
            assert isinstance(err, rt.RealtimeErrorEvent), err
            assert err.error.event_id == ev["event_id"] and err.error.code and err.error.message
        await conn.send({"type": "session.update", "session": {"type": "transcription"}})  # type: ignore
        assert isinstance(await conn.recv(), rt.SessionUpdatedEvent)  # still serving


async def test_unauthorized_realtime(hub_with_key: HubProcess) -> None:
    async with client(hub_with_key, "wrong").realtime.connect(extra_query={"intent": "transcription"}) as conn:
        err = await conn.recv()
        assert isinstance(err, rt.RealtimeErrorEvent) and err.error.code == "unauthorized"
    async with client(hub_with_key, "sekrit").realtime.connect(extra_query={"intent": "transcription"}) as conn:
        assert isinstance(await conn.recv(), rt.SessionCreatedEvent)


@pytest.fixture(scope="module")
def hub_with_key(tmp_path_factory: pytest.TempPathFactory) -> Any:
    from tests.support import base_config
    h = HubProcess(base_config(), tmp_path_factory.mktemp("rtkey"),
                   env={"ASRHUB_SERVER__AUTH__API_KEYS": "[{key: sekrit}]"}).start()
    yield h
    h.stop()
