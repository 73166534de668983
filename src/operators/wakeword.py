"""Wake word: keyphrase spotting with PocketSphinx 5 and the English model its wheel ships.

A PocketSphinx ``Decoder`` in keyphrase mode (``keyphrase=...``, ``kws_threshold=...``)
runs one continuous utterance over the live audio; when ``hyp()`` turns non-empty
the phrase was heard, its end frame comes from ``seg()`` and the utterance is
restarted. Creating a decoder loads the acoustic model (~0.2 s CPU, a few MB), so
idle decoders are kept in a small process-wide pool keyed by (phrase, threshold)
and reused by later sessions (``close()`` or garbage collection returns them).

Threshold: larger = fewer false alarms, fewer hits. The default 1e-20 detects
"wait no longer" in LibriSpeech 1089-134691-0001 (clean and with white noise at
20 dB SNR) and raises no false alarm on ~150 s of other manifest speech; 1e-30 to
1e-40 helps in noise (10 dB SNR) at the cost of more false alarms for short phrases.
"""

from __future__ import annotations

import threading
import weakref
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..core.audio import HUB_RATE
from ..core.errors import ErrorCode, HubError

SAMPLE_RATE = HUB_RATE  # the acoustic model runs at 16 kHz, the hub rate
FRAME_SHIFT = 160  # PocketSphinx: 100 frames per second at 16 kHz
STEP_SAMPLES = 320  # audio is passed on in 20 ms steps, so detections are placed within 20 ms
POOL_SIZE = 4  # idle decoders kept per (phrase, threshold)

_lock = threading.RLock()  # re-entrant: a finalizer may return a decoder during GC
_pool: dict[tuple[str, float], list[Any]] = {}
_builder: ThreadPoolExecutor | None = None  # builds decoders off the event loop (created on first use)
_dictionary: bytes | None = None  # the model's pronunciation dictionary, read on first phrase check
_checked: set[str] = set()  # words known to be in the dictionary


@dataclass(frozen=True)
class WakeDetection:
    phrase: str
    offset_samples: int  # approximate end of the phrase, in session timeline samples (16 kHz)


#: the refusal when PocketSphinx is not installed: an operator, like the Silero VAD, with the install command
NEEDS_POCKETSPHINX = "the wake word needs the 'pocketsphinx' package: pip install 'asrhub[wakeword]'"


def normalise_phrase(phrase: str) -> str:
    return " ".join(phrase.lower().split())


def _new_decoder(phrase: str, threshold: float) -> Any:
    try:
        import pocketsphinx
    except ImportError:
        raise HubError(ErrorCode.operator_unavailable, NEEDS_POCKETSPHINX) from None
    try:
        decoder = pocketsphinx.Decoder(keyphrase=phrase, kws_threshold=threshold, loglevel="FATAL")
    except (RuntimeError, ValueError) as exc:
        raise HubError(ErrorCode.invalid_command, f"cannot spot wake phrase {phrase!r}: {exc}") from None
    missing = [w for w in phrase.split() if decoder.lookup_word(w) is None]
    if missing:
        raise HubError(
            ErrorCode.invalid_command, f"wake phrase words not in the English dictionary: {missing}"
        )
    return decoder


def _acquire(phrase: str, threshold: float) -> Any:
    with _lock:
        idle = _pool.get((phrase, threshold))
        if idle:
            return idle.pop()
    return _new_decoder(phrase, threshold)


def check_phrase(phrase: str) -> str:
    """Normalise a wake phrase and check its words against the model's dictionary without building a
    decoder (the first check reads the 3 MB dictionary, ~10 ms; each new word costs a few ms)."""
    global _dictionary
    p = normalise_phrase(phrase)
    if not p:
        raise HubError(ErrorCode.invalid_command, "wake phrase is empty")
    words = [w for w in p.split() if w not in _checked]
    if not words:
        return p
    if _dictionary is None:
        try:
            import pocketsphinx
        except ImportError:
            raise HubError(ErrorCode.operator_unavailable, NEEDS_POCKETSPHINX) from None
        path = Path(pocketsphinx.get_model_path()) / "en-us" / "cmudict-en-us.dict"
        _dictionary = b"\n" + path.read_bytes()
    missing = [w for w in words if _dictionary.find(b"\n" + w.encode() + b" ") < 0]
    if missing:
        raise HubError(ErrorCode.invalid_command, f"wake phrase words not in the English dictionary: {missing}")
    _checked.update(words)
    return p


def _executor() -> ThreadPoolExecutor:
    global _builder
    with _lock:
        if _builder is None:
            _builder = ThreadPoolExecutor(max_workers=1, thread_name_prefix="wakeword-build")
        return _builder


def _refill(key: tuple[str, float]) -> None:
    decoder = _new_decoder(*key)
    with _lock:
        idle = _pool.setdefault(key, [])
        if len(idle) < POOL_SIZE:
            idle.append(decoder)


def open_spotter(phrase: str, threshold: float) -> KeyphraseSpotter | Future[KeyphraseSpotter]:
    """A spotter now if an idle decoder is pooled (and a replacement is built in the background),
    else a future that builds one in a worker thread: the event loop never waits for a model load."""
    key = (normalise_phrase(phrase), float(threshold))
    with _lock:
        idle = _pool.get(key)
        decoder = idle.pop() if idle else None
        empty = not idle
    if decoder is None:
        return _executor().submit(KeyphraseSpotter, phrase, threshold)
    if empty:
        _executor().submit(_refill, key)
    return KeyphraseSpotter(phrase, threshold, decoder=decoder)


def prewarm(phrase: str, threshold: float, count: int = 2) -> None:
    """Build `count` idle decoders for (phrase, threshold) (blocking: call it in a worker thread)."""
    spotters = [KeyphraseSpotter(phrase, threshold) for _ in range(max(0, min(count, POOL_SIZE)))]
    for s in spotters:
        s.close()


def _release(key: tuple[str, float], decoder: Any, in_utt: list[bool]) -> None:
    if in_utt[0]:
        try:
            decoder.end_utt()
        except RuntimeError:
            return
        in_utt[0] = False
    with _lock:
        idle = _pool.setdefault(key, [])
        if len(idle) < POOL_SIZE:
            idle.append(decoder)


class KeyphraseSpotter:
    """Spot one keyphrase in 16 kHz mono int16 audio streamed in pieces of any size."""

    def __init__(self, phrase: str, threshold: float = 1e-20, decoder: Any = None) -> None:
        self.phrase = normalise_phrase(phrase)
        if not self.phrase:
            raise HubError(ErrorCode.invalid_command, "wake phrase is empty")
        if not threshold > 0:
            raise HubError(ErrorCode.invalid_command, f"wake threshold must be > 0, got {threshold}")
        self.threshold = float(threshold)
        key = (self.phrase, self.threshold)
        self._decoder = decoder if decoder is not None else _acquire(*key)
        self._in_utt = [False]  # shared with the finalizer, which returns the decoder to the pool
        self._finalizer = weakref.finalize(self, _release, key, self._decoder, self._in_utt)
        self._utt_start = 0  # timeline offset of the first sample of the current utterance
        self._next = -1  # offset expected for the next sample (-1: none yet)

    def feed(self, samples: np.ndarray, offset: int) -> list[WakeDetection]:
        """Process ``samples`` (int16, 16 kHz mono) whose first sample is at ``offset``."""
        if not self._finalizer.alive:
            raise HubError(ErrorCode.invalid_command, "wake word spotter is closed")
        if samples.dtype != np.int16:
            samples = (np.clip(samples, -1.0, 1.0) * 32767.0).astype(np.int16)
        if samples.ndim != 1:
            raise ValueError("wake word spotter takes mono audio (1-D array)")
        if offset != self._next:
            self._restart(offset)  # first call, or a gap/overlap in the timeline
        found: list[WakeDetection] = []
        d = self._decoder
        for start in range(0, len(samples), STEP_SAMPLES):
            piece = samples[start : start + STEP_SAMPLES]
            d.process_raw(piece.tobytes(), False, False)
            if d.hyp() is not None:
                found.append(WakeDetection(self.phrase, self._detection_end(offset + start + len(piece))))
                self._restart(offset + start + len(piece))
        self._next = offset + len(samples)
        return found

    def reset(self) -> None:
        """Forget partial matches; the next feed starts a new utterance at its offset."""
        if self._in_utt[0]:
            self._decoder.end_utt()
            self._in_utt[0] = False
        self._next = -1

    def close(self) -> None:
        """Return the decoder to the process-wide pool."""
        self._finalizer()

    def _restart(self, offset: int) -> None:
        if self._in_utt[0]:
            self._decoder.end_utt()
        self._decoder.start_utt()
        self._in_utt[0] = True
        self._utt_start = offset

    def _detection_end(self, fallback: int) -> int:
        ends = [seg.end_frame for seg in self._decoder.seg()]
        if not ends:
            return fallback
        return min(fallback, self._utt_start + (max(ends) + 1) * FRAME_SHIFT)
