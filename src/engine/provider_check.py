"""`asrhub providers [--check]`: load the configured providers once, describe them, optionally probe.

`--check` sends one second of low noise through each available provider's `transcribe()`, which runs
the model (or calls the remote API) end to end without a speech file. A provider passes when the call
returns a result within `providers.timeout_s`; what it recognised does not matter. Providers that are
not available are not probed: their reason is the answer.

`required_unavailable()` is what a hub cannot serve without: the default provider or one that
`providers.routes` names, unavailable (its library missing, its model path wrong, disabled), or unhealthy
(its server unreachable, a passing fault) with no provider of `providers.fallback` available to take its
sessions. `/readyz` answers 503 while there is one, the hub logs each at WARNING with the fix, and
`providers --check` and `config check` exit 1.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..core.config import HubConfig, ProvidersConfig
from ..providers.base import Provider, TranscribeOptions
from ..providers.registry import NEEDS, ProviderSet, provider_class, validate_options
from .scheduler import Scheduler

log = logging.getLogger(__name__)

PROBE_S = 1.0
_EXTRA = re.compile(r"the '([\w-]+)' extra is not installed")
_INSTALL = re.compile(r"\((pip install [^)]+)\)")  # a reason that names its own install command


@dataclass(frozen=True)
class Unavailable:
    """A provider the hub needs that cannot serve: `role` "default" or "routed"."""

    name: str
    role: str
    reason: str
    fix: str
    status: str = "unavailable"  # or "unhealthy" (with nothing to fall back on)

    def describe(self) -> str:
        role = "the default provider" if self.role == "default" else "routed to by providers.routes"
        return f"provider '{self.name}' ({role}) is {self.status}: {self.reason}"


def required_names(cfg: ProvidersConfig) -> dict[str, str]:
    """Name -> role of the providers a session may get without naming one: the default, then each one a
    route names (in config order, each once). Only names with a block in `instances`."""
    out = {cfg.default: "default"} if cfg.default in cfg.instances else {}
    for route in cfg.routes:
        if route.provider in cfg.instances:
            out.setdefault(route.provider, "routed")
    return out


def fix_for(cfg: ProvidersConfig, name: str, role: str, reason: str) -> str:
    """What to do about it, in one clause: the package to install or the key to correct."""
    block = cfg.instances[name]
    elsewhere = f"or point {'providers.default' if role == 'default' else 'providers.routes'} at another provider"
    m = _EXTRA.search(reason)
    if m:
        return f"pip install 'asrhub[{m.group(1)}]' ({elsewhere})"
    m = _INSTALL.search(reason)
    if m:
        return f"{m.group(1)} ({elsewhere})"
    if not block.enabled:
        return f"set providers.instances.{name}.enabled: true ({elsewhere})"
    named = [k for k in provider_class(block.type).Options.model_fields if re.search(rf"\b{re.escape(k)}\b", reason)]
    if named:  # the reason names the option at fault ("model directory ... does not exist", "no 'url'")
        return f"correct providers.instances.{name}.{max(named, key=len)} ({elsewhere})"
    needs = NEEDS.get(block.type)
    return f"correct providers.instances.{name}" + (f", which needs {needs}" if needs else "") + f" ({elsewhere})"


def unavailable_in(cfg: ProvidersConfig, rows: list[dict[str, Any]]) -> list[Unavailable]:
    """The default and routed providers whose row (`ProviderSet.describe()`) says `unavailable` (a failed
    load or a disabled block), or `unhealthy` (a passing fault) while no provider of `providers.fallback`
    is available: the sessions they would get have nowhere to go (`loading` does not count)."""
    required = required_names(cfg)
    status = {row["name"]: row["status"] for row in rows}
    out = []
    for row in rows:
        name, role = row["name"], required.get(row["name"])
        if role is None:
            continue
        reason = row["reason"] or row["status"]
        if row["status"] == "unavailable":
            out.append(Unavailable(name, role, reason, fix_for(cfg, name, role, reason)))
        elif row["status"] == "unhealthy" and not any(status.get(f) == "available" for f in cfg.fallback if f != name):
            fix = (f"bring it back (the hub tries it again every {cfg.probe_interval_s:g} s and is ready once it "
                   f"answers), correct providers.instances.{name}, or list a working provider in providers.fallback")
            out.append(Unavailable(name, role, reason, fix, status="unhealthy"))
    return out


def required_unavailable(ps: ProviderSet) -> list[Unavailable]:
    """`unavailable_in` for a loaded provider set (the hub's, whose status is the store's view)."""
    return unavailable_in(ps.config, ps.describe())


def warn_unavailable(ps: ProviderSet) -> list[Unavailable]:
    """Log each required provider that is unavailable at WARNING, with its fix."""
    missing = required_unavailable(ps)
    for u in missing:
        log.warning("%s. /readyz answers 503 until this is fixed: %s", u.describe(), u.fix)
    return missing


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


def effective_provider_options(cfg: ProvidersConfig) -> dict[str, dict[str, Any]]:
    """Each provider block as its type reads it: type, enabled, language, then every option of the
    type's typed model with its default filled in (for `asrhub config check`; mask the secrets)."""
    out: dict[str, dict[str, Any]] = {}
    for name, block in cfg.instances.items():
        options = validate_options(name, block.type, block.options).model_dump(mode="json")
        out[name] = {"type": block.type, "enabled": block.enabled, "language": block.language, **options}
    return out


async def load_required(cfg: HubConfig) -> tuple[list[tuple[str, str]], list[Unavailable]]:
    """Load only the default, routed and fallback providers (what `config check` needs to say the hub would
    be ready): (name, status) of those it can serve with (`unhealthy` ones among them when a fallback is
    available), and those it cannot."""
    sched = Scheduler(1)
    await sched.start()
    ps = ProviderSet(cfg.providers, sched)
    try:
        required = required_names(cfg.providers)
        wanted = {*required, *cfg.providers.fallback}  # the fallbacks: whether an unhealthy one is covered
        await ps.load(only=[p for name, p in ps.providers.items() if name in wanted])
        missing = required_unavailable(ps)
        status = {row["name"]: row["status"] for row in ps.describe()}
        return [(n, status[n]) for n in required if n not in {u.name for u in missing}], missing
    finally:
        await ps.close()
        await sched.stop()


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
