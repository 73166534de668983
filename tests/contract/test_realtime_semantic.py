"""Issue 19: Realtime `turn_detection: {type: semantic_vad, eagerness}` runs the hub's semantic turn mode, driven
by the official `openai` client (every server event parsed by the SDK)."""

from __future__ import annotations

from openai.types.realtime import (
    ConversationItemInputAudioTranscriptionCompletedEvent as Completed,
)
from openai.types.realtime import InputAudioBufferSpeechStoppedEvent, SessionUpdatedEvent

from tests.contract.test_realtime import client, pcm, recv_until, send_audio
from tests.support import HubProcess, clip, wer

SENTENCE = clip("en_ljspeech_LJ001-0005")  # one sentence, a comma pause in it (at 5.8 s)


async def test_semantic_vad_ends_the_turn_with_the_sentence(hub: HubProcess) -> None:
    async with client(hub).realtime.connect(extra_query={"intent": "transcription"}) as conn:
        await conn.recv()  # session.created
        await conn.session.update(session={"type": "transcription", "audio": {"input": {  # type: ignore[arg-type]
            "format": {"type": "audio/pcm", "rate": 24000}, "transcription": {"model": "whisper-1", "language": "en"},
            "turn_detection": {"type": "semantic_vad", "eagerness": "low"}}}})
        updated = await conn.recv()
        assert isinstance(updated, SessionUpdatedEvent), updated
        td = updated.session.audio.input.turn_detection  # type: ignore[union-attr]
        assert td is not None and td.type == "semantic_vad" and td.eagerness == "low"  # type: ignore[union-attr]
        await send_audio(conn, pcm(SENTENCE, 24000) + bytes(24000 * 2 * 2))  # and 2 s of silence
        events = await recv_until(conn, Completed, n=1, timeout=60)
    done = [e for e in events if isinstance(e, Completed)]
    stopped = [e for e in events if isinstance(e, InputAudioBufferSpeechStoppedEvent)]
    assert len(stopped) == 1 and abs(stopped[0].audio_end_ms - SENTENCE.seconds * 1000) < 400, stopped
    assert wer([SENTENCE.transcript], [done[0].transcript]) < 0.15, done[0].transcript


async def test_semantic_vad_with_a_bad_eagerness_is_refused(hub: HubProcess) -> None:
    async with client(hub).realtime.connect(extra_query={"intent": "transcription"}) as conn:
        await conn.recv()
        await conn.send({"type": "session.update", "session": {"type": "transcription", "audio": {"input": {
            "turn_detection": {"type": "semantic_vad", "eagerness": "eager"}}}}})  # type: ignore[arg-type]
        err = await conn.recv()
        assert err.type == "error" and err.error.code == "invalid_command", err  # type: ignore[union-attr]
        assert "turn_detection" in (err.error.param or ""), err  # type: ignore[union-attr]
