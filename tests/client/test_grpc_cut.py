"""asrhub.client over gRPC leaves nothing behind when the hub dies under a live call (issue 21, the chaos
bench's client log): the call's request stream was an async generator that grpc's writer task sits in
(waiting for the next request) when the call is cut. Nothing ended that task, so when the connection was
dropped the garbage collector found it pending inside the generator, and the generator's finalizer
(`aclose()`) failed: "Task exception was never retrieved ... aclose(): asynchronous generator is already
running". Now the stream is an iterator object and a closed connection ends its writer. A real hub process
is killed (SIGKILL) mid-session; every exception the event loop is handed meanwhile is collected."""

from __future__ import annotations

import asyncio
import gc
import signal
from pathlib import Path
from typing import Any

import pytest

from asrhub.client import AudioSpec, GrpcClient, ResumeFailed, TranscriptFinal
from tests.support import HubProcess, base_config, clip, load_pcm16

PCM = AudioSpec(encoding="pcm_s16le", sample_rate=16000, channels=1)


async def test_a_hub_killed_under_a_live_call_leaves_no_task_exception(tmp_path: Path) -> None:
    hub = HubProcess(base_config(), tmp_path).start()
    loop = asyncio.get_running_loop()
    handed: list[dict[str, Any]] = []
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda _loop, context: handed.append(context))
    try:
        client = GrpcClient(f"127.0.0.1:{hub.grpc_port}", max_reconnects=2, reconnect_delay_s=0.05)
        s = await client.session(audio=PCM)
        pcm = load_pcm16(clip("en_libri_1221").path).tobytes() + bytes(32000)  # (1 s of silence ends it)
        for i in range(0, len(pcm), 3200):
            await s.send(pcm[i:i + 3200])
        async for ev in s:  # the call is live and carrying events: its writer waits for the next request
            if isinstance(ev, TranscriptFinal):
                break
        hub.stop(signal.SIGKILL)
        with pytest.raises(ResumeFailed):  # (nothing to resume on: the hub is gone)
            async for _ in s:
                pass
        await s.close()
        await client.aclose()
        del s, client
        for _ in range(3):  # what the collector finds is finalised, and what that schedules runs, twice over
            gc.collect()
            for _ in range(5):
                await asyncio.sleep(0)
    finally:
        loop.set_exception_handler(previous)
        hub.stop()
    assert not handed, [(c.get("message"), repr(c.get("exception"))) for c in handed]
