"""The turn model: Smart Turn v3.2 (pipecat-ai, BSD-2-Clause) on onnxruntime, P(the speaker's turn is complete).

Input: the last <= 8 s of 16 kHz speech up to now (silence after the last word included). The model takes
Whisper log-mel features, 80 x 800 frames of 8 s: the audio is zero-padded in FRONT to 8 s (the end of speech
sits at the same place in every window), normalised to zero mean and unit variance over the padded window,
then turned into the log-mel spectrogram that Whisper uses (faster-whisper's FeatureExtractor, already a
hub dependency). Output: `logits` (batch, 1), which are already probabilities (the graph ends in a sigmoid).

The weights come from the pipecat-ai wheel (core.bundled.SMART_TURN: found in place, size and sha256
checked, pipecat never imported). Calls from every session go to one thread of their own (`TurnRunner`):
what queued while a batch ran is the next batch, so a busy hub asks the model once for many sessions.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from ..core.audio import HUB_RATE
from ..core.bundled import SMART_TURN, BundledModelError, packaged_file
from ..core.errors import ErrorCode, HubError

log = logging.getLogger(__name__)

#: how scripts/install.sh installs it: the extra (onnxruntime), then the wheel that holds the model, without
#: its dependencies (the hub never imports pipecat)
INSTALL = "pip install 'asrhub[turn]' && pip install --no-deps pipecat-ai==1.14.0"

WINDOW_S = 8
WINDOW = WINDOW_S * HUB_RATE   # 128 000 samples
_NORM_EPS = 1e-7


def window(audio: np.ndarray) -> np.ndarray:
    """The last 8 s of `audio` (int16 or float in [-1, 1]) as float32, zero-padded in front to 8 s."""
    x = audio.astype(np.float32) / 32768.0 if audio.dtype == np.int16 else audio.astype(np.float32)
    if len(x) >= WINDOW:
        return x[-WINDOW:]
    return np.concatenate([np.zeros(WINDOW - len(x), dtype=np.float32), x])


class Features:
    """8 s of audio -> the model's (80, 800) log-mel input."""

    def __init__(self) -> None:
        from faster_whisper.feature_extractor import FeatureExtractor

        self._fe = FeatureExtractor(feature_size=80, sampling_rate=HUB_RATE, hop_length=160,
                                    chunk_length=WINDOW_S, n_fft=400)

    def __call__(self, audio: np.ndarray) -> np.ndarray:
        x = window(audio)
        x = (x - x.mean()) / np.sqrt(x.var() + _NORM_EPS)
        mel = self._fe(x, padding=0)  # 801 STFT frames, the last dropped: (80, 800)
        return np.asarray(mel, dtype=np.float32)


class TurnModel:
    """The loaded model. `predict` is blocking (run it on the runner's thread)."""

    def __init__(self, path: str | None = None) -> None:
        try:
            import onnxruntime as ort
        except ImportError:
            raise HubError(ErrorCode.operator_unavailable, "the turn model (turn mode 'semantic') needs "
                           f"'onnxruntime', which is not installed: {INSTALL}") from None
        try:
            self.path = packaged_file(SMART_TURN, path)
        except BundledModelError as e:
            fix = "set pipeline.turn.model_path to the file, or clear it" if path else INSTALL
            raise HubError(ErrorCode.operator_unavailable,
                           f"the turn model (turn mode 'semantic') cannot load: {e}; fix: {fix}") from None
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.log_severity_level = 3
        self._session = ort.InferenceSession(str(self.path), sess_options=opts, providers=["CPUExecutionProvider"])
        self.features = Features()

    def predict(self, audios: Sequence[np.ndarray]) -> list[float]:
        """P(turn complete) for each audio (the speech so far, 16 kHz mono)."""
        batch = np.stack([self.features(a) for a in audios])
        out = self._session.run(None, {"input_features": batch})[0]
        return [float(p) for p in np.asarray(out).reshape(len(audios))]


class TurnRunner:
    """One thread for the turn model of every session; requests that queue while it runs go as one batch."""

    def __init__(self, path: str | None = None, max_batch: int = 8) -> None:
        self.path = path
        self.max_batch = max_batch
        self._model: TurnModel | None = None
        self._error: HubError | None = None
        self._lock = threading.Lock()
        self._queue: list[tuple[np.ndarray, asyncio.Future[float], asyncio.AbstractEventLoop]] = []
        self._busy = False
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="asrhub-turn")
        self.calls = 0      # audios scored
        self.batches = 0    # model runs
        self.busy_s = 0.0   # thread time spent in them

    def load(self) -> TurnModel:
        """The model, loaded once (blocking: the first call from a worker thread or at start-up)."""
        with self._lock:
            if self._model is None:
                self._model = TurnModel(self.path)
            return self._model

    def check(self) -> None:
        """Raises the HubError (operator_unavailable) that makes the model unusable (file missing, wrong hash,
        no onnxruntime)."""
        if self._model is None:
            try:
                self.load()
            except HubError as e:
                self._error = e
                raise
            except Exception as e:
                raise HubError(ErrorCode.operator_unavailable,
                               f"the turn model (turn mode 'semantic') failed to load: {e}") from e

    def submit(self, audio: np.ndarray) -> asyncio.Future[float]:
        """P(turn complete) of `audio`, as a future on the running loop."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[float] = loop.create_future()
        with self._lock:
            self._queue.append((audio, fut, loop))
            start = not self._busy
            self._busy = True
        if start:
            self._executor.submit(self._drain)
        return fut

    def _drain(self) -> None:
        import time

        while True:
            with self._lock:
                batch, self._queue = self._queue[:self.max_batch], self._queue[self.max_batch:]
                if not batch:
                    self._busy = False
                    return
            t0 = time.thread_time()
            try:
                probs: list[float] | BaseException = self.load().predict([a for a, _, _ in batch])
            except BaseException as e:  # noqa: BLE001 - handed to every waiting session
                probs = e
            self.busy_s += time.thread_time() - t0
            self.batches += 1
            self.calls += len(batch)
            for i, (_, fut, loop) in enumerate(batch):
                result: Any = probs if isinstance(probs, BaseException) else probs[i]
                loop.call_soon_threadsafe(_settle, fut, result)


def _settle(fut: asyncio.Future[float], result: float | BaseException) -> None:
    if fut.done():
        return
    if isinstance(result, BaseException):
        fut.set_exception(result)
    else:
        fut.set_result(result)


_runners: dict[str | None, TurnRunner] = {}
_runners_lock = threading.Lock()


def get_runner(path: str | None = None) -> TurnRunner:
    """The process-wide runner of the model at `path` (None: the one in the pipecat-ai package)."""
    with _runners_lock:
        runner = _runners.get(path or None)
        if runner is None:
            runner = _runners[path or None] = TurnRunner(path or None)
        return runner
