"""`asrhub providers [--check]`: load the configured providers once, describe them, optionally probe.

`--check` sends one second of low noise through each available provider's `transcribe()`, which runs
the model (or calls the remote API) end to end without a speech file. A provider passes when the call
returns a result within `providers.timeout_s`; what it recognised does not matter. Providers that are
not available are not probed: their reason is the answer.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import numpy as np

from ..providers.base import Provider, TranscribeOptions
from ..providers.registry import ProviderSet
from .config import HubConfig
from .scheduler import Scheduler

PROBE_S = 1.0


def probe_audio(seconds: float = PROBE_S, rate: int = 16000) -> np.ndarray:
    """Low-level noise as PCM16 (a zero buffer is short-circuited by some decoders)."""
    rng = np.random.default_rng(0)
    return (rng.standard_normal(int(seconds * rate)) * 30).astype(np.int16)


async def probe(p: Provider, timeout_s: float) -> dict[str, Any]:
    t0 = time.perf_counter()
    try:
        await asyncio.wait_for(p.transcribe(probe_audio(), TranscribeOptions(language=p.language)), timeout_s)
    except Exception as e:
        return {"ok": False, "detail": f"{type(e).__name__}: {e}"[:300]}
    return {"ok": True, "detail": f"decoded {PROBE_S:.0f} s in {time.perf_counter() - t0:.2f} s"}


async def describe_providers(cfg: HubConfig, check: bool = False) -> list[dict[str, Any]]:
    sched = Scheduler(1)
    await sched.start()
    ps = ProviderSet(cfg.providers, sched)
    try:
        await ps.load()
        rows = ps.describe()
        if check:
            for row in rows:
                p = ps.providers.get(row["name"])
                if p is not None and row["status"] == "available":
                    row["check"] = await probe(p, cfg.providers.timeout_s)
                else:
                    row["check"] = None
        return rows
    finally:
        await ps.close()
        await sched.stop()
