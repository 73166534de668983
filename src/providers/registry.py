"""Provider registry: provider type -> class (imported lazily), and the loaded instances of a hub."""

from __future__ import annotations

import asyncio
import importlib
import logging
from typing import Any

from ..core.config import ProvidersConfig
from ..core.errors import ErrorCode, HubError
from ..core.scheduler import Scheduler
from .base import Provider

log = logging.getLogger(__name__)

#: type name -> "module:Class". Modules import their libraries inside load(), never at import time.
BUILTIN: dict[str, str] = {
    "faster_whisper": "asrhub.providers.faster_whisper:FasterWhisperProvider",
}

_extra: dict[str, type[Provider]] = {}


def register(kind: str, cls: type[Provider]) -> None:
    """Register a provider class under a type name (plugins and tests)."""
    _extra[kind] = cls


def provider_class(kind: str) -> type[Provider]:
    if kind in _extra:
        return _extra[kind]
    target = BUILTIN.get(kind)
    if target is None:
        raise HubError(ErrorCode.unknown_provider, f"unknown provider type '{kind}'")
    module, _, cls = target.partition(":")
    return getattr(importlib.import_module(module), cls)  # type: ignore[no-any-return]


class ProviderSet:
    """The providers one config describes, loaded once and shared by every session."""

    def __init__(self, config: ProvidersConfig, scheduler: Scheduler, interim: dict[str, Any] | None = None):
        self.config = config
        self.scheduler = scheduler
        self.providers: dict[str, Provider] = {}
        for name, block in config.instances.items():
            if not block.enabled:
                continue
            cls = provider_class(block.type)
            self.providers[name] = cls(name, block.options, scheduler, language=block.language)

    async def load(self) -> None:
        async def one(p: Provider) -> None:
            try:
                await p.load()
            except Exception as e:  # a provider that fails to load is unavailable, the hub still runs
                log.exception("provider %s failed to load", p.name)
                p.set_health("unavailable", f"load failed: {e}")
            log.info("provider %s: %s%s", p.name, p.health().status,
                     f" ({p.health().reason})" if p.health().reason else "")

        await asyncio.gather(*(one(p) for p in self.providers.values()))

    async def close(self) -> None:
        await asyncio.gather(*(p.close() for p in self.providers.values()), return_exceptions=True)

    def get(self, name: str | None) -> Provider:
        name = name or self.config.default
        p = self.providers.get(name)
        if p is None:
            raise HubError(ErrorCode.unknown_provider, f"unknown provider '{name}'; configured: "
                           f"{', '.join(self.providers) or 'none'}")
        h = p.health()
        if h.status != "available":
            raise HubError(ErrorCode.provider_unavailable, f"provider '{name}' is {h.status}: {h.reason or ''}".strip())
        return p

    def describe(self) -> list[dict[str, Any]]:
        out = []
        for p in self.providers.values():
            h = p.health()
            caps = getattr(p, "capabilities", None)
            out.append({"name": p.name, "type": p.kind, "status": h.status, "reason": h.reason,
                        "capabilities": caps.as_dict() if caps else None, "model": p.model,
                        "default": p.name == self.config.default})
        return out
