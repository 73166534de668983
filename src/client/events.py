"""Hub events off the wire -> the typed models of asrhub.core.events (the client imports the vocabulary only).

Fields a newer hub adds that these models do not know are dropped rather than refused, so a client keeps
working against a hub one version ahead."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field, TypeAdapter

from ..core.events import (
    EVENT_MODELS,
    ErrorEvent,
    Event,
    ProviderSwitched,
    SessionEnded,
    SessionMigrated,
    SessionStarted,
    SpeechEnded,
    SpeechStarted,
    TranscriptFinal,
    TranscriptPartial,
    WakewordDetected,
)

AnyEvent = Annotated[SessionStarted | SpeechStarted | SpeechEnded | TranscriptPartial | TranscriptFinal
                     | SessionMigrated | ProviderSwitched | WakewordDetected | ErrorEvent | SessionEnded,
                     Field(discriminator="type")]
_adapter: TypeAdapter[AnyEvent] = TypeAdapter(AnyEvent)


def _known_keys(model: type[Event]) -> set[str]:
    keys = set()
    for name, f in model.model_fields.items():
        keys.add(name)
        if f.alias:
            keys.add(f.alias)
    return keys


_KEYS = {t: _known_keys(m) for t, m in EVENT_MODELS.items()}


def parse_event(data: dict[str, Any]) -> Event:
    """A JSON event (as every wire but gRPC carries it) -> its typed model. An event type this client does
    not know comes back as the base `Event` (type, session_id, seq, ts)."""
    kind = str(data.get("type"))
    keys = _KEYS.get(kind)
    if keys is None:
        return Event(type=str(data.get("type")), session_id=str(data.get("session_id", "")),
                     seq=int(data.get("seq", 0)), ts=float(data.get("ts", 0.0)))
    return _adapter.validate_python({k: v for k, v in data.items() if k in keys})


__all__ = [
    "AnyEvent", "ErrorEvent", "Event", "ProviderSwitched", "SessionEnded", "SessionMigrated", "SessionStarted",
    "SpeechEnded", "SpeechStarted", "TranscriptFinal", "TranscriptPartial", "WakewordDetected", "parse_event",
]
