"""The audio a stop-ended final lacks after its last word, filled with the utterance's own background.

A final decodes `StreamAdapter.tail_ms` of audio after the last voiced frame, as the VAD has heard it when it
hints a pause: at an endpoint that is the room's sound after the speech. A final forced by `stop` right after
the last word (push-to-talk) has no audio there yet. Filled with digital silence, the recording's background
stops dead at the cut, and tiny.en read the end differently from the same speech endpointed: the sonnet's last
"thee" became "the" (no sentence end: a word cut off), LibriSpeech 1089-134686-0000's "flour fattened sauce"
"flower-fat and sauce" (docs/BENCHMARKS.md, issue 23). The quietest stretch of the utterance's audio is its
background (a pause, the pre-roll); copied after the cut, the decoder sees the end of speech as at an endpoint.
Audio with no quiet stretch (speech throughout) gets silence, as before, and so does a digitally silent
recording, whose quietest stretch is silence. Used only with `StreamAdapter.fill_tail`, off by default: on finals
decoded without a promise the filled tail changed words seconds before the end too, both ways.
"""

from __future__ import annotations

import numpy as np

HOP = 160         # 10 ms: where a stretch may start
FRAME = 480       # 30 ms: the frames the speech level is measured on
QUIET_DB = 20.0   # a background stretch lies at least this far under the speech level


def room_tone(audio: np.ndarray, n: int) -> np.ndarray:
    """`n` samples for after `audio` (an utterance's audio, int16 or float): its quietest stretch of `n`
    samples when that lies `QUIET_DB` under the speech level (the 95th percentile of its 30 ms frames'
    power), else zeros. Never longer than `n`; zeros when the audio is shorter than `n`."""
    if n <= 0:
        return np.zeros(0, dtype=audio.dtype)
    if len(audio) < max(n, FRAME):
        return np.zeros(n, dtype=audio.dtype)
    power = audio.astype(np.float64) ** 2
    total = np.concatenate([[0.0], np.cumsum(power)])
    starts = np.arange(0, len(audio) - n + 1, HOP)
    window = (total[starts + n] - total[starts]) / n
    frames = power[:len(power) // FRAME * FRAME].reshape(-1, FRAME).mean(axis=1)
    speech = float(np.percentile(frames, 95))
    best = int(np.argmin(window))
    if window[best] * 10 ** (QUIET_DB / 10) > speech:
        return np.zeros(n, dtype=audio.dtype)  # no stretch quiet enough: it would be speech
    at = int(starts[best])
    return audio[at:at + n].copy()
