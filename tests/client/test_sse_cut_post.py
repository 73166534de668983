"""An HTTP + SSE audio POST that the hub took, cut by the client's own resume: not sent twice.

Found in the 24-talker chaos run at ca83e8e (/tmp/chaos4): when a node died, the SSE talkers' event
streams through it ended and `asrhub.client` resumed, closing its HTTP connections, while an audio POST to
another node was in flight; nginx logged it 499 (client closed), the node logged 202 (it had taken the
audio). The client sent it again after the resume: 100 ms twice on the timeline, and every position the
client counted from then on 100 ms short of the hub's (a later takeover's held audio sent again from the
wrong place). The resume's answer (`audio_from_ms`) says the hub has it: it now counts as sent.

A real hub on loopback behind a TCP gate (tests/cluster/redis_gate.py) that holds back the answer to that
audio POST once the hub has given it, then cuts the event stream (as a dying node would): the client
resumes. The session's audio, asked of the hub at the end, is what the client sent, once."""

from __future__ import annotations

import asyncio
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from asrhub.client import SseClient, TranscriptFinal
from asrhub.core.commands import AudioSpec
from tests.cluster.nodes import FIRST
from tests.cluster.redis_gate import RedisGate
from tests.support import HubProcess, base_config, clip, load_pcm16, wer

CHUNK = 3200  # 100 ms of 16 kHz pcm_s16le
PCM = AudioSpec(encoding="pcm_s16le", sample_rate=16000, channels=1)


async def test_audio_a_resume_cut_off_after_the_hub_took_it_is_not_sent_twice(tmp_path: Path) -> None:
    hub = HubProcess(base_config(), tmp_path).start()
    gate = RedisGate(int(urlsplit(hub.http).port or 0)).start()
    client = SseClient(f"http://127.0.0.1:{gate.port}", reconnect_delay_s=0.05)
    pcm = load_pcm16(clip(FIRST).path).tobytes()
    try:
        s = await client.session(audio=PCM)
        finals: list[TranscriptFinal] = []

        async def read() -> None:
            async for ev in s:
                if isinstance(ev, TranscriptFinal):
                    finals.append(ev)

        reading = asyncio.create_task(read())
        for i in range(0, 10 * CHUNK, CHUNK):
            await s.send(pcm[i:i + CHUNK])
        gate.hold("/audio")
        try:
            sending = asyncio.create_task(s.send(pcm[10 * CHUNK:11 * CHUNK]))
            assert await asyncio.to_thread(gate.answered.wait, 60), "the hub did not answer the audio POST"
            gate.cut("/events")  # the event stream's node dies: the client resumes, closing the POST
            assert await asyncio.to_thread(gate.dropped.wait, 60), "the client did not close the audio POST"
        finally:
            gate.release()
        await asyncio.wait_for(sending, 60)
        assert s.reconnects == 1, s.reconnects
        for i in range(11 * CHUNK, len(pcm), CHUNK):
            await s.send(pcm[i:i + CHUNK])
        async with httpx.AsyncClient(timeout=30) as http:  # how much audio the session has (the hub itself)
            r = await http.post(hub.http + "/v1/sessions", json={
                "audio": PCM.model_dump(), "resume": {"session_id": s.session_id, "last_seq": 0, "held_audio": True}})
        assert r.status_code == 200, r.text
        assert r.json()["audio_from_ms"] == len(pcm) // 32, (r.json()["audio_from_ms"], len(pcm) // 32)
        await s.stop()
        await asyncio.wait_for(reading, 60)
        assert wer([clip(FIRST).transcript], [" ".join(f.text for f in finals)]) < 0.25, finals
    finally:
        await client.aclose()
        gate.stop()
        hub.stop()
