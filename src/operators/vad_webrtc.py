"""WebRTC VAD frame classifier (webrtcvad-wheels): microseconds per frame."""

from __future__ import annotations

import numpy as np
import webrtcvad

from ..core.audio import HUB_RATE


class WebRtcVad:
    def __init__(self, aggressiveness: int = 2, frame_ms: int = 30) -> None:
        self._vad = webrtcvad.Vad(aggressiveness)
        self.frame_samples = HUB_RATE * frame_ms // 1000

    def is_speech(self, frame: np.ndarray) -> bool:
        return bool(self._vad.is_speech(frame.tobytes(), HUB_RATE))

    def reset(self) -> None:
        return None
