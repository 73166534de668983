"""The checks every entry point makes on StartSession-like options, whatever the wire.

WebSocket/SSE/Socket.IO/gRPC `start`, gRPC `Recognize` and the REST uploads all go through these, so
one request is accepted or refused with the same `invalid_command` message on every transport.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .commands import AudioSpec, StartSession, parse_start
from .config import LimitsConfig
from .errors import ClientError, ErrorCode
from .language import parse_language

if TYPE_CHECKING:
    from ..providers.base import Provider

MIN_SAMPLE_RATE = 4000


def validate_audio_spec(spec: AudioSpec, limits: LimitsConfig) -> None:
    """sample_rate and channels are range-checked for every encoding: for containers the stream's own
    values win once it is decoded, but the declared ones are echoed back and must be sane too."""
    if not MIN_SAMPLE_RATE <= spec.sample_rate <= limits.max_sample_rate:
        raise ClientError(ErrorCode.invalid_command, f"audio.sample_rate {spec.sample_rate} is out of range "
                       f"({MIN_SAMPLE_RATE}..{limits.max_sample_rate})")
    if not 1 <= spec.channels <= limits.max_channels:
        raise ClientError(ErrorCode.invalid_command,
                       f"audio.channels {spec.channels} is out of range (1..{limits.max_channels})")


def validate_language(provider: Provider, language: str | None) -> None:
    """`language` (a BCP-47 tag; None or "auto": detect) must be one the provider knows: its primary subtag
    in the provider's list, or in its engine's languages when it detects (`Capabilities.supports_language`)."""
    if not language:
        return
    parse_language(language)  # a malformed tag: invalid_command naming it
    if not provider.capabilities.supports_language(language):
        raise ClientError(ErrorCode.invalid_command, f"provider '{provider.name}' does not support language "
                          f"'{language}' (supports: {', '.join(provider.capabilities.languages)})")


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


def validate_idle_timeout(idle_timeout_s: float | None, limits: LimitsConfig) -> float:
    """The session's effective idle timeout: its own when set (bounded by the config's), else the config's."""
    if idle_timeout_s is None:
        return limits.idle_timeout_s
    if idle_timeout_s > limits.idle_timeout_s:
        raise ClientError(ErrorCode.invalid_command, f"idle_timeout_s {idle_timeout_s:g} exceeds the hub's bound "
                       f"limits.idle_timeout_s = {limits.idle_timeout_s:g}")
    return idle_timeout_s


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


def request_options(**fields: Any) -> StartSession:
    """A whole-file request's options as a StartSession (fields left None are unset), parsed and typed
    exactly as a streaming `start` is."""
    return parse_start({k: v for k, v in fields.items() if v is not None})
