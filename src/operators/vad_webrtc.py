"""WebRTC VAD frame classifier (webrtcvad-wheels): microseconds per frame.

WebRTC's VAD has an absolute energy floor: speech recorded very quietly (lossy web audio, a far
microphone: speech peaks near -50 dBFS) is never called speech, so no utterance opens and nothing is
transcribed, while Whisper itself normalises the level and would read it fine. A slow automatic gain
therefore lifts quiet input before the classifier: the level is a peak-hold of the frames' RMS (instant
attack, `release_db_s` release), and the gain brings it up to `target_rms` (about -35 dBFS), never
down, at most `max_gain`, and never so far that the noise floor (the quietest recent frame) rises above
`noise_ceiling_rms` (about -56 dBFS: amplified noise would make the classifier's own noise estimate
late to call speech). Input at ordinary levels is untouched (gain 1), so is stationary noise at
ordinary levels; only the classifier sees the gained copy, the audio itself is not changed.
"""

from __future__ import annotations

import math
from collections import deque

import numpy as np
import webrtcvad

from ..core.audio import HUB_RATE


class LevelTracker:
    """Gain that lifts quiet audio to `target_rms` (peak-hold level, instant attack, slow release), but
    never lifts the noise floor (the quietest frame of the last `floor_s`) above `noise_ceiling_rms`."""

    def __init__(self, frame_ms: int, target_rms: float = 600.0, max_gain: float = 64.0,
                 release_db_s: float = 6.0, noise_ceiling_rms: float = 50.0, floor_s: float = 3.0) -> None:
        self.target = target_rms
        self.max_gain = max_gain
        self.noise_ceiling = noise_ceiling_rms
        self.decay = 10 ** (-release_db_s * frame_ms / 1000 / 20)
        self.level = 0.0
        self._recent: deque[float] = deque(maxlen=max(1, int(floor_s * 1000 / frame_ms)))

    def gain(self, frame: np.ndarray) -> float:
        x = frame.astype(np.float32)
        rms = math.sqrt(float(np.dot(x, x)) / max(1, len(x)))
        self.level = max(rms, self.level * self.decay)
        self._recent.append(rms)
        if self.level <= 0.0:
            return 1.0
        floor = max(min(self._recent), 1.0)
        return min(self.max_gain, self.noise_ceiling / floor, max(1.0, self.target / self.level))

    def reset(self) -> None:
        self.level = 0.0
        self._recent.clear()


class WebRtcVad:
    def __init__(self, aggressiveness: int = 2, frame_ms: int = 30, normalise: bool = True) -> None:
        self._vad = webrtcvad.Vad(aggressiveness)
        self.frame_samples = HUB_RATE * frame_ms // 1000
        self._level = LevelTracker(frame_ms) if normalise else None

    def is_speech(self, frame: np.ndarray) -> bool:
        if self._level is not None:
            g = self._level.gain(frame)
            if g > 1.0:
                frame = np.clip(frame.astype(np.float32) * g, -32768, 32767).astype(np.int16)
        return bool(self._vad.is_speech(frame.tobytes(), HUB_RATE))

    def reset(self) -> None:
        if self._level is not None:
            self._level.reset()
