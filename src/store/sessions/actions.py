"""Session slice actions. Ids and timestamps are made by the caller, never by the reducer."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..base import ActionType, EventPayload


@dataclass(frozen=True)
class Created:
    session_id: str
    provider: str
    transport: str
    api_key: str | None
    at: float


@dataclass(frozen=True)
class SessionRef:
    session_id: str


@dataclass(frozen=True)
class Started(EventPayload):
    provider: str


@dataclass(frozen=True)
class SpeechEdge(EventPayload):
    speaking: bool


@dataclass(frozen=True)
class FinalEmitted(EventPayload):
    audio_ms: int


@dataclass(frozen=True)
class ProviderSwitched(EventPayload):
    to: str


@dataclass(frozen=True)
class ErrorRaised(EventPayload):
    code: str
    fatal: bool


@dataclass(frozen=True)
class Delivered(EventPayload):
    """Any other event (wake word, ...) that only needs routing."""


@dataclass(frozen=True)
class EndRequested:
    session_id: str
    reason: str


@dataclass(frozen=True)
class Ended(EventPayload):
    reason: str
    stats: Any


created = ActionType[Created]("[Session] Created")
started = ActionType[Started]("[Session] Started")
speech_edge = ActionType[SpeechEdge]("[Session] Speech Edge")
final_emitted = ActionType[FinalEmitted]("[Session] Final Emitted")
provider_switched = ActionType[ProviderSwitched]("[Session] Provider Switched")
error_raised = ActionType[ErrorRaised]("[Session] Error")
delivered = ActionType[Delivered]("[Session] Event")
stop_requested = ActionType[SessionRef]("[Session] Stop Requested")
idle_detected = ActionType[SessionRef]("[Session] Idle Detected")
end_requested = ActionType[EndRequested]("[Session] End Requested")
ended = ActionType[Ended]("[Session] Ended")
detached = ActionType[SessionRef]("[Session] Client Detached")
attached = ActionType[SessionRef]("[Session] Client Attached")
removed = ActionType[SessionRef]("[Session] Removed")

EVENT_ACTIONS = (started, speech_edge, final_emitted, provider_switched, error_raised, delivered, ended)
