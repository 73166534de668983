"""A provider a reload removes is closed once its last live session has ended: the retirement waits on
the store's state changes (a session ending), not on a clock. In-process hub, scripted providers."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from asrhub.core.commands import parse_start
from asrhub.core.config import load_config
from asrhub.hub import Hub
from tests.fixtures.scripted import ScriptedProvider


class Tracked(ScriptedProvider):
    """A scripted provider that says when it is closed."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.closed = asyncio.Event()

    async def close(self) -> None:
        self.closed.set()


TRACKED = f"{__name__}:Tracked"


def config(*names: str) -> str:
    instances = "".join(f"    {n}:\n      type: {TRACKED}\n" for n in names)
    return (f"pipeline:\n  vad:\n    enabled: false\nserver:\n  grpc_enabled: false\n"
            f"providers:\n  default: {names[0]}\n  fallback: [{names[0]}]\n  instances:\n{instances}")


def test_a_retired_provider_closes_when_its_last_session_ends(tmp_path: Path) -> None:
    path = tmp_path / "hub.yaml"
    path.write_text(config("a", "b"))

    async def run() -> None:
        hub = Hub(load_config(path))
        await hub.start()
        reloader = hub.reloader
        assert reloader is not None
        try:
            a = hub.providers.providers["a"]
            assert isinstance(a, Tracked)
            s = hub.service.start_session(parse_start({"audio": {"encoding": "pcm_s16le", "sample_rate": 16000},
                                                       "provider": "a"}), "test")
            path.write_text(config("b"))
            assert await reloader.reload()
            assert "a" not in hub.providers.providers and hub.service.is_live(s.id)
            retiring = set(reloader._retiring)
            assert len(retiring) == 1
            with pytest.raises(TimeoutError):  # the session still runs on it: not closed
                await asyncio.wait_for(asyncio.shield(a.closed.wait()), 0.3)
            hub.service.push_audio(s.id, b"\x01\x00" * 1600)  # a change in the store that ends nothing
            assert not a.closed.is_set()
            hub.service.abort(s.id)  # its last session ends: the retirement wakes and closes it
            await asyncio.wait_for(a.closed.wait(), 10)
            await asyncio.wait_for(asyncio.gather(*retiring), 5)
        finally:
            await hub.stop()

    asyncio.run(run())
