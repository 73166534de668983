"""The events of a session taken over by another node (DESIGN §8 "Owner death → takeover").

- `session.migrated {from_node, to_node, audio_from_ms}`: the session's node died and `to_node` goes on
  with it; its audio timeline goes on from `audio_from_ms` (the end of the last final, or less far back
  than `limits.replay_audio_s`).
- `session.started {resumed: true, migrated: true, audio_from_ms}`: the new node's start of the session.
  A client that holds the audio it sent since the last final sends it again from `audio_from_ms`
  (docs/PROTOCOL.md), so the open utterance is decoded again and no words are lost.

These two models stand beside `core/events.py` until the vocabulary there takes them (docs/DEVIATIONS.md):
`parse_event` here reads every event, these included.
"""

from __future__ import annotations

import json
from typing import Literal

from .events import Event, SessionStarted
from .events import parse_event as parse_core_event


class SessionMigrated(Event):
    type: Literal["session.migrated"] = "session.migrated"
    from_node: str
    to_node: str
    audio_from_ms: int


class SessionStartedMigrated(SessionStarted):
    """`session.started` of a session that another node took over."""

    resumed: bool = True
    migrated: bool = True
    audio_from_ms: int


def parse_event(text: str | bytes) -> Event:
    """An event from its wire JSON, as its own model (these two included)."""
    data = json.loads(text)
    if isinstance(data, dict) and data.get("type") == "session.migrated":
        return SessionMigrated.model_validate(data)
    if isinstance(data, dict) and data.get("type") == "session.started" and "migrated" in data:
        return SessionStartedMigrated.model_validate(data)
    return parse_core_event(text)
