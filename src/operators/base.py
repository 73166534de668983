"""What flows through the pipeline: audio chunks and utterance markers, in timeline order."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from ..core.audio import AudioChunk


@dataclass(frozen=True, slots=True)
class SpeechStart:
    offset: int        # speech onset (sample offset in the session timeline)
    audio_start: int   # where the utterance's audio begins (onset minus pre-roll)


@dataclass(frozen=True, slots=True)
class SpeechEnd:
    offset: int        # end of the last voiced audio
    forced: bool = False  # flush, stop or max_utterance_s rather than silence


@dataclass(frozen=True, slots=True)
class PauseHint:
    """Speech has paused for a while at `offset` (end of the last voiced audio); the utterance may end
    there. Lets a provider start the final's decode before the endpoint is certain."""

    offset: int


Item = AudioChunk | SpeechStart | SpeechEnd | PauseHint


class FrameClassifier(Protocol):
    """A frame-level voice activity detector at 16 kHz."""

    frame_samples: int

    def is_speech(self, frame: np.ndarray) -> bool: ...

    def reset(self) -> None: ...
