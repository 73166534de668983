"""Hub -> client events (DESIGN §3.2). Every event: type, session_id, seq, ts."""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class Event(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: str
    session_id: str
    seq: int = 0
    ts: float = 0.0

    def to_json(self) -> str:
        return self.model_dump_json(exclude_none=True)

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(exclude_none=True)


class _Part(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AudioFormat(_Part):
    """The session's audio as the hub normalised it."""

    encoding: str
    sample_rate: int
    channels: int


class EffectiveVad(_Part):
    enabled: bool
    kind: str
    silence_ms: int
    min_speech_ms: int
    pre_roll_ms: int
    max_utterance_s: float


class EffectiveWakeword(_Part):
    enabled: bool
    phrase: str | None = None
    threshold: float | None = None
    window_s: float | None = None


class EffectiveTurn(_Part):
    mode: Literal["silence", "semantic"]
    eagerness: str | None = None        # semantic only, as the rest
    threshold: float | None = None
    min_silence_ms: int | None = None
    max_silence_ms: int | None = None


class EffectiveConfig(_Part):
    """What the session runs with: config defaults with its own overrides applied."""

    interim_results: bool
    word_timestamps: bool
    vad: EffectiveVad
    turn: EffectiveTurn | None = None
    wakeword: EffectiveWakeword
    record: bool
    hub_sample_rate: int
    interim_interval_ms: int


class SessionStats(_Part):
    """`session.ended`'s figures. The one shape of a session's counters: the store's record accrues its
    utterances, partials and finals in one as they happen; the rest is filled in when the session ends."""

    audio_ms: int = 0
    utterances: int = 0
    finals: int = 0
    partials: int = 0
    audio_bytes: int = 0
    duration_ms: int = 0
    language: str | None = None               # detected (a session routed by its language): the last answer
    language_probability: float | None = None


class SessionStarted(Event):
    type: Literal["session.started"] = "session.started"
    provider: str
    language: str | None = None
    audio: AudioFormat
    config: EffectiveConfig
    resumed: bool = False
    # after a takeover (DESIGN §8): true, and where the audio timeline goes on from; absent otherwise (None is
    # not written), so the started event of a session that did not move keeps its keys
    migrated: bool | None = None
    audio_from_ms: int | None = None


class SpeechStarted(Event):
    type: Literal["speech.started"] = "speech.started"
    offset_ms: int


class SpeechEnded(Event):
    type: Literal["speech.ended"] = "speech.ended"
    offset_ms: int
    # why the utterance ended: silence (vad.silence_ms), turn (the turn model), max_silence (turn mode's longest
    # wait), max_length (vad.max_utterance_s), flush (flush, stop, a wake gate closing)
    reason: Literal["silence", "turn", "max_silence", "max_length", "flush"] = "silence"
    turn_probability: float | None = None  # semantic turn mode: the turn model's last answer


class Word(BaseModel):
    word: str
    start_ms: int
    end_ms: int
    confidence: float


class TranscriptPartial(Event):
    type: Literal["transcript.partial"] = "transcript.partial"
    utterance_id: str
    text: str
    stable_text: str
    start_ms: int
    end_ms: int


class TranscriptFinal(Event):
    type: Literal["transcript.final"] = "transcript.final"
    utterance_id: str
    text: str
    start_ms: int
    end_ms: int
    words: list[Word] | None = None
    language: str | None = None
    language_probability: float | None = None  # how sure the language ID was (a session routed by it)
    provider: str
    latency_ms: int
    lag_ms: int | None = None
    recording: str | None = None
    end_of_turn: bool | None = None  # semantic turn mode: the speaker has finished (not a long turn cut)


class ProviderSwitched(Event):
    type: Literal["provider.switched"] = "provider.switched"
    from_: str = Field(alias="from", serialization_alias="from")
    to: str
    reason: str

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    def to_json(self) -> str:
        return self.model_dump_json(exclude_none=True, by_alias=True)

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(exclude_none=True, by_alias=True)


class WakewordDetected(Event):
    type: Literal["wakeword.detected"] = "wakeword.detected"
    phrase: str
    offset_ms: int


class ErrorEvent(Event):
    type: Literal["error"] = "error"
    code: str
    message: str
    fatal: bool = False
    retry_after_ms: int | None = None  # a refused resume: try again after this (absent otherwise)


class SessionMigrated(Event):
    """The session's node died and `to_node` goes on with it (DESIGN §8 "Owner death → takeover"): its audio
    timeline continues from `audio_from_ms` (the last final's end, at most `limits.replay_audio_s` back). A
    client that holds the audio sent since then sends it again from there, so the open utterance is decoded
    again and no words are lost."""

    type: Literal["session.migrated"] = "session.migrated"
    from_node: str
    to_node: str
    audio_from_ms: int


class SessionEnded(Event):
    type: Literal["session.ended"] = "session.ended"
    reason: Literal["stop", "idle", "error", "client_gone", "shutdown"]
    stats: SessionStats = Field(default_factory=SessionStats)


#: Each event type's model, by its `type`.
EVENT_MODELS: dict[str, type[Event]] = {
    m.model_fields["type"].default: m for m in (SessionStarted, SpeechStarted, SpeechEnded, TranscriptPartial,
                                                TranscriptFinal, SessionMigrated, ProviderSwitched,
                                                WakewordDetected, ErrorEvent, SessionEnded)}
EVENT_TYPES = tuple(EVENT_MODELS)


def parse_event(text: str | bytes) -> Event:
    """An event from its wire JSON (`to_json`), as its own model (the cluster's event log holds JSON)."""
    data = json.loads(text)
    cls = EVENT_MODELS.get(data.get("type", "")) if isinstance(data, dict) else None
    if cls is None:
        raise ValueError(f"not a hub event: {str(text)[:80]!r}")
    return cls.model_validate(data)
