"""The checks of a request against the provider that would serve it, whatever the wire.

WebSocket/SSE/Socket.IO/gRPC `start`, gRPC `Recognize` and the REST uploads all go through these, so
one request is accepted or refused with the same `invalid_command` message on every transport. The
checks that need no provider (audio spec, idle timeout) are core/validation.py.
"""

from __future__ import annotations

from ..core.commands import StartSession
from ..core.config import LimitsConfig
from ..core.errors import ClientError, ErrorCode
from ..core.language import parse_language
from ..core.validation import validate_audio_spec, validate_idle_timeout
from .base import Provider


def validate_language(provider: Provider, language: str | None) -> None:
    """`language` (a BCP-47 tag; None or "auto": detect) must be one the provider knows: its primary subtag
    in the provider's list, or in its engine's languages when it detects (`Capabilities.supports_language`)."""
    if not language:
        return
    parse_language(language)  # a malformed tag: invalid_command naming it
    if not provider.capabilities.supports_language(language):
        raise ClientError(ErrorCode.invalid_command, f"provider '{provider.name}' does not support language "
                          f"'{language}' (supports: {', '.join(provider.capabilities.language_list())})")


def validate_features(provider: Provider, task: str = "transcribe", prompt: str | None = None,
                      hotwords: list[str] | tuple[str, ...] | None = None) -> None:
    """`task: translate`, `prompt` and `hotwords` only where the provider's capabilities say it honours
    them: refused, never ignored."""
    caps = provider.capabilities
    if task == "translate" and not caps.translate:
        raise ClientError(ErrorCode.invalid_command, f"provider '{provider.name}' cannot translate (task "
                          "'translate' needs a multilingual Whisper model)")
    if prompt and not caps.prompt:
        raise ClientError(ErrorCode.invalid_command, f"provider '{provider.name}' does not support 'prompt'")
    if hotwords and not caps.hotwords:
        raise ClientError(ErrorCode.invalid_command, f"provider '{provider.name}' does not support 'hotwords'")


def check_request(provider: Provider, language: str | None, task: str = "transcribe", prompt: str | None = None,
                  hotwords: list[str] | tuple[str, ...] | None = None) -> None:
    """`invalid_command` unless `provider` can honour the language, task, prompt and hotwords asked for
    (routing, failover candidates and every entry point use it)."""
    validate_language(provider, language)
    validate_features(provider, task, prompt, hotwords)


def validate_start(cmd: StartSession, provider: Provider, limits: LimitsConfig) -> None:
    """Everything about a new session's options that does not need a pipeline built to know. Whole-file
    requests (gRPC Recognize, REST uploads) put their options in a StartSession and come here too."""
    validate_audio_spec(cmd.audio, limits)
    validate_language(provider, cmd.language or provider.language)
    validate_features(provider, cmd.task, cmd.prompt, cmd.hotwords)
    validate_idle_timeout(cmd.idle_timeout_s, limits)
