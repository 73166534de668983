"""The checks every entry point makes on StartSession-like options that need no provider to answer
(audio spec, idle timeout), whatever the wire; the checks against a provider are providers/checks.py.

WebSocket/SSE/Socket.IO/gRPC `start`, gRPC `Recognize` and the REST uploads all go through these, so
one request is accepted or refused with the same `invalid_command` message on every transport.
"""

from __future__ import annotations

from typing import Any

from .commands import AudioSpec, StartSession, parse_start
from .config import LimitsConfig
from .errors import ClientError, ErrorCode

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


def validate_idle_timeout(idle_timeout_s: float | None, limits: LimitsConfig) -> float:
    """The session's effective idle timeout: its own when set (bounded by the config's), else the config's."""
    if idle_timeout_s is None:
        return limits.idle_timeout_s
    if idle_timeout_s > limits.idle_timeout_s:
        raise ClientError(ErrorCode.invalid_command, f"idle_timeout_s {idle_timeout_s:g} exceeds the hub's bound "
                       f"limits.idle_timeout_s = {limits.idle_timeout_s:g}")
    return idle_timeout_s


def request_options(**fields: Any) -> StartSession:
    """A whole-file request's options as a StartSession (fields left None are unset), parsed and typed
    exactly as a streaming `start` is."""
    return parse_start({k: v for k, v in fields.items() if v is not None})
