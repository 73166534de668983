"""What flows through the pipeline: audio chunks and utterance markers, in timeline order."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal, Protocol

import numpy as np

from ..core.audio import AudioChunk


@dataclass(frozen=True, slots=True)
class SpeechStart:
    offset: int        # speech onset (sample offset in the session timeline)
    audio_start: int   # where the utterance's audio begins (onset minus pre-roll)


#: Why an utterance ended (speech.ended `reason`): the silence wait, the turn model, the longest silence turn
#: mode waits, the longest utterance, or the client (flush/stop; a wake gate closing its window too).
EndReason = Literal["silence", "turn", "max_silence", "max_length", "flush"]


@dataclass(frozen=True, slots=True)
class SpeechEnd:
    offset: int        # end of the last voiced audio
    forced: bool = False  # flush, stop or max_utterance_s rather than silence
    reason: EndReason = "silence"
    turn_probability: float | None = None  # the turn model's last answer (turn mode)


@dataclass(frozen=True, slots=True)
class PauseHint:
    """Speech has paused for a while at `offset` (end of the last voiced audio); the utterance may end
    there. Lets a provider start the final's decode before the endpoint is certain. `on_text` (turn mode):
    called once with that decode's text, or None when the provider does not speculate or the decode fails."""

    offset: int
    on_text: Callable[[str | None], None] | None = field(default=None, compare=False)


@dataclass(frozen=True, slots=True)
class Gated:
    """Audio a wake-word gate holds back: it stays in the session timeline (ring buffer, recorder placed
    before the gate) but no stage after the gate may open an utterance on it."""

    chunk: AudioChunk


@dataclass(frozen=True, slots=True)
class WakeWord:
    """The wake phrase ended at `offset`; the gate's listening window opens there."""

    phrase: str
    offset: int


Item = AudioChunk | SpeechStart | SpeechEnd | PauseHint | Gated | WakeWord


class FrameClassifier(Protocol):
    """A frame-level voice activity detector at 16 kHz."""

    frame_samples: int

    def is_speech(self, frame: np.ndarray) -> bool: ...

    def reset(self) -> None: ...
