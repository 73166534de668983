"""Session slice actions. Ids and timestamps are made by the caller, never by the reducer.

Every client-visible event travels as the payload of exactly one action (an `EventPayload`); the
router effect, registered last, puts it in the session's channel. Audio never does.
"""

from __future__ import annotations

from dataclasses import dataclass

from ...core.events import SessionStats
from ..base import ActionType, EventPayload


@dataclass(frozen=True)
class Created:
    session_id: str
    provider: str
    transport: str
    api_key: str | None
    at: float
    detect: bool = False   # routed by the language its speech is in (DESIGN §5; providers.detect)


@dataclass(frozen=True)
class SessionRef:
    session_id: str


@dataclass(frozen=True)
class UtteranceRef:
    session_id: str
    utterance_id: str


@dataclass(frozen=True)
class Detached:
    """The client of attachment `attachment` went away (a stale one, replaced by a resume, is ignored)."""

    session_id: str
    attachment: int


@dataclass(frozen=True)
class Started(EventPayload):
    """The session's stream is open on the provider its record names: it listens."""


@dataclass(frozen=True)
class SpeechEdge(EventPayload):
    speaking: bool
    utterance_id: str


@dataclass(frozen=True)
class PartialEmitted(EventPayload):
    """A partial: one cheap action (the channel may still coalesce it with the next one)."""


@dataclass(frozen=True)
class FinalEmitted(EventPayload):
    """A final (counted in the session's stats)."""


@dataclass(frozen=True)
class WakewordDetected(EventPayload):
    pass


@dataclass(frozen=True)
class ProviderSwitched(EventPayload):
    to: str


@dataclass(frozen=True)
class ErrorRaised(EventPayload):
    code: str
    fatal: bool


@dataclass(frozen=True)
class DetectDue:
    """Identify the language of `utterance_id` from its first `seconds` of audio (or all of it, if shorter)."""

    session_id: str
    utterance_id: str
    seconds: float


@dataclass(frozen=True)
class DetectRequested:
    """Identify the language of `utterance_id` from the session's audio [start, end) (sample offsets)."""

    session_id: str
    utterance_id: str
    start: int
    end: int


@dataclass(frozen=True)
class LanguageDetected:
    """The language ID's answer for `utterance_id` (`language` None: no answer to route by, it failed or
    heard no language; the route stays)."""

    session_id: str
    utterance_id: str
    language: str | None
    probability: float | None


@dataclass(frozen=True)
class LanguageRouted(EventPayload):
    """The session moved to the provider its detected language routes to (`provider.switched`)."""

    to: str


@dataclass(frozen=True)
class EndRequested:
    session_id: str
    reason: str


@dataclass(frozen=True)
class Ended(EventPayload):
    reason: str
    stats: SessionStats


@dataclass(frozen=True)
class IllegalTransition:
    """An action that the state machine does not allow from the session's state (DESIGN §2.1). The
    transition guard dispatches this instead; an effect logs it."""

    session_id: str
    state: str
    action_type: str


created = ActionType[Created]("[Session] Created")
started = ActionType[Started]("[Session] Started")
speech_edge = ActionType[SpeechEdge]("[Session] Speech Edge")
partial_emitted = ActionType[PartialEmitted]("[Session] Partial Emitted")
final_emitted = ActionType[FinalEmitted]("[Session] Final Emitted")
final_timed_out = ActionType[UtteranceRef]("[Session] Final Timed Out")
wakeword_detected = ActionType[WakewordDetected]("[Session] Wakeword Detected")
provider_switched = ActionType[ProviderSwitched]("[Session] Provider Switched")
error_raised = ActionType[ErrorRaised]("[Session] Error")
stop_requested = ActionType[SessionRef]("[Session] Stop Requested")
idle_detected = ActionType[SessionRef]("[Session] Idle Detected")
end_requested = ActionType[EndRequested]("[Session] End Requested")
ended = ActionType[Ended]("[Session] Ended")
detached = ActionType[Detached]("[Session] Client Detached")
attached = ActionType[SessionRef]("[Session] Client Attached")
removed = ActionType[SessionRef]("[Session] Removed")
illegal_transition = ActionType[IllegalTransition]("[Session] Illegal Transition")
detect_due = ActionType[DetectDue]("[Session] Language Detection Due")
detect_requested = ActionType[DetectRequested]("[Session] Language Detection Requested")
language_detected = ActionType[LanguageDetected]("[Session] Language Detected")
language_routed = ActionType[LanguageRouted]("[Session] Language Routed")
