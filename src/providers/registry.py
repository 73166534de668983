"""Provider registry: provider type -> class (imported lazily), and the loaded instances of a hub."""

from __future__ import annotations

import asyncio
import importlib
import logging
from collections.abc import Callable
from typing import Any

from ..core.config import ProvidersConfig
from ..core.errors import ErrorCode, HubError
from ..core.work import Scheduling
from .base import Provider

log = logging.getLogger(__name__)

#: type name -> "module:Class". Modules import their libraries inside load(), never at import time.
BUILTIN: dict[str, str] = {
    "faster_whisper": "asrhub.providers.faster_whisper:FasterWhisperProvider",
    "openai_whisper": "asrhub.providers.openai_whisper:OpenAIWhisperProvider",
    "vosk": "asrhub.providers.vosk:VoskProvider",
    "funasr": "asrhub.providers.funasr:FunASRProvider",
    "google": "asrhub.providers.google:GoogleProvider",
    "openai": "asrhub.providers.openai_api:OpenAIProvider",
}

_extra: dict[str, type[Provider]] = {}


def register(kind: str, cls: type[Provider]) -> None:
    """Register a provider class under a type name (plugins and tests)."""
    _extra[kind] = cls


def provider_class(kind: str) -> type[Provider]:
    """A registered or built-in type name, or "package.module:Class" naming a Provider subclass (plugins)."""
    if kind in _extra:
        return _extra[kind]
    target = BUILTIN.get(kind)
    if target is None and ":" not in kind:
        raise HubError(ErrorCode.unknown_provider, f"unknown provider type '{kind}' "
                       f"(built in: {', '.join(BUILTIN)}; or 'package.module:Class')")
    module, _, name = (target or kind).partition(":")
    try:
        cls = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as e:
        raise HubError(ErrorCode.unknown_provider, f"cannot import provider type '{kind}': {e}") from None
    if not (isinstance(cls, type) and issubclass(cls, Provider)):
        raise HubError(ErrorCode.unknown_provider, f"provider type '{kind}' is not a Provider class")
    return cls


class ProviderSet:
    """The providers one config describes, loaded once and shared by every session."""

    def __init__(self, config: ProvidersConfig, scheduler: Scheduling, interim: dict[str, Any] | None = None):
        self.config = config
        self.scheduler = scheduler
        self.providers: dict[str, Provider] = self.instantiate(config)
        # How healthy a provider is. The hub binds this to the store's providers slice (the one owner of
        # provider health); standalone (CLI transcribe) it is the provider's own report.
        self.status_of: Callable[[Provider], tuple[str, str | None]] = lambda p: (p.health().status,
                                                                                 p.health().reason)

    def instantiate(self, config: ProvidersConfig, reuse: dict[str, Provider] | None = None) -> dict[str, Provider]:
        """Provider objects for `config`'s enabled blocks; `reuse` maps names to already loaded ones."""
        out: dict[str, Provider] = {}
        for name, block in config.instances.items():
            if not block.enabled:
                continue
            if reuse and name in reuse:
                out[name] = reuse[name]
                continue
            cls = provider_class(block.type)
            out[name] = cls(name, block.options, self.scheduler, language=block.language)
        return out

    def replace(self, config: ProvidersConfig, providers: dict[str, Provider]) -> None:
        """Swap in a reloaded configuration (its providers already loaded); live sessions keep theirs."""
        self.config = config
        self.providers = providers

    async def load(self, only: list[Provider] | None = None) -> None:
        async def one(p: Provider) -> None:
            try:
                await p.load()
            except Exception as e:  # a provider that fails to load is unavailable, the hub still runs
                log.exception("provider %s failed to load", p.name)
                p.set_health("unavailable", f"load failed: {e}")
            log.info("provider %s: %s%s", p.name, p.health().status,
                     f" ({p.health().reason})" if p.health().reason else "")

        await asyncio.gather(*(one(p) for p in (self.providers.values() if only is None else only)))

    async def close(self) -> None:
        await asyncio.gather(*(p.close() for p in self.providers.values()), return_exceptions=True)

    def get(self, name: str | None) -> Provider:
        """The named provider, or the default; when the default is down, the first healthy fallback."""
        asked = name
        name = name or self.config.default
        p = self.providers.get(name)
        if p is None:
            raise HubError(ErrorCode.unknown_provider, f"unknown provider '{name}'; configured: "
                           f"{', '.join(self.providers) or 'none'}")
        status, reason = self.status_of(p)
        if status != "available" and asked is None:
            for alt in self.config.fallback:
                q = self.providers.get(alt)
                if q is not None and self.status_of(q)[0] == "available":
                    return q
        if status != "available":
            raise HubError(ErrorCode.provider_unavailable, f"provider '{name}' is {status}: {reason or ''}".strip())
        return p

    def describe(self) -> list[dict[str, Any]]:
        out = []
        for p in self.providers.values():
            status, reason = self.status_of(p)
            caps = getattr(p, "capabilities", None)
            out.append({"name": p.name, "type": p.kind, "status": status, "reason": reason,
                        "capabilities": caps.as_dict() if caps else None, "model": p.model,
                        "default": p.name == self.config.default})
        return out
