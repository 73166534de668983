"""Silero VAD (v5/v6 ONNX model from the ``silero-vad`` wheel) on onnxruntime, no torch.

The model file is located inside the installed ``silero_vad`` package without
importing it (its ``__init__`` imports torch). One ``InferenceSession`` (1 intra-op
and 1 inter-op thread) is created on first use and shared by every instance; each
instance keeps its own recurrent state (2, 1, 128) and the 64-sample context that
the model expects in front of each 512-sample frame at 16 kHz.

Model I/O (checked on silero-vad 6.2): ``input`` float32 (1, 64 + 512), ``state``
float32 (2, 1, 128), ``sr`` int64 scalar -> ``output`` (1, 1) speech probability,
``stateN`` (2, 1, 128).
"""

from __future__ import annotations

import importlib.util
import threading
from pathlib import Path
from typing import Any

import numpy as np

from ..core.audio import HUB_RATE
from ..core.errors import ErrorCode, HubError

SAMPLE_RATE = HUB_RATE  # the model runs at 16 kHz, the hub rate
FRAME_SAMPLES = 512
CONTEXT_SAMPLES = 64
MODEL_FILE = "silero_vad.onnx"

#: how scripts/install.sh installs it: the extra (onnxruntime), then the wheel without its torch dependency
INSTALL = "pip install 'asrhub[silero]' && pip install --no-deps silero-vad==6.2.3"

_lock = threading.Lock()
_session: Any = None


def model_path() -> Path:
    """Path of silero_vad/data/silero_vad.onnx in the installed wheel (no import of the package)."""
    spec = importlib.util.find_spec("silero_vad")
    if spec is None or not spec.submodule_search_locations:
        raise HubError(ErrorCode.operator_unavailable,
                       f"the silero VAD needs the 'silero-vad' package, which is not installed: {INSTALL}")
    for location in spec.submodule_search_locations:
        path = Path(location) / "data" / MODEL_FILE
        if path.is_file():
            return path
    raise HubError(ErrorCode.operator_unavailable,
                   f"the silero VAD's {MODEL_FILE} is not in the installed silero-vad package: {INSTALL}")


def get_session() -> Any:
    """The process-wide onnxruntime session, created on first use."""
    global _session
    with _lock:
        if _session is None:
            try:
                import onnxruntime as ort
            except ImportError:
                raise HubError(ErrorCode.operator_unavailable,
                               f"the silero VAD needs 'onnxruntime', which is not installed: {INSTALL}") from None
            opts = ort.SessionOptions()
            opts.intra_op_num_threads = 1
            opts.inter_op_num_threads = 1
            opts.log_severity_level = 3
            _session = ort.InferenceSession(
                str(model_path()), sess_options=opts, providers=["CPUExecutionProvider"]
            )
        return _session


class SileroVad:
    """Frame classifier: 512-sample int16 mono frames at 16 kHz -> speech probability."""

    frame_samples = FRAME_SAMPLES

    def __init__(self, threshold: float = 0.5) -> None:
        if not 0.0 < threshold < 1.0:
            raise HubError(ErrorCode.invalid_command, f"silero threshold must be in (0, 1), got {threshold}")
        self.threshold = threshold
        self._session = get_session()
        self._sr = np.array(SAMPLE_RATE, dtype=np.int64)
        self._input = np.zeros((1, CONTEXT_SAMPLES + FRAME_SAMPLES), dtype=np.float32)
        self.reset()

    def reset(self) -> None:
        """Forget the recurrent state and context (start of a new stream)."""
        self._state = np.zeros((2, 1, 128), dtype=np.float32)
        self._input[:] = 0.0

    def speech_prob(self, frame: np.ndarray) -> float:
        """Probability that the 512-sample frame (int16 or float in [-1, 1]) is speech."""
        if frame.shape != (FRAME_SAMPLES,):
            raise ValueError(f"silero VAD frames are {FRAME_SAMPLES} mono samples, got shape {frame.shape}")
        x = self._input
        x[0, :CONTEXT_SAMPLES] = x[0, -CONTEXT_SAMPLES:]  # last 64 samples of the previous frame
        if frame.dtype == np.int16:
            np.multiply(frame, 1.0 / 32768.0, out=x[0, CONTEXT_SAMPLES:], casting="unsafe")
        else:
            x[0, CONTEXT_SAMPLES:] = frame
        out, self._state = self._session.run(None, {"input": x, "state": self._state, "sr": self._sr})
        return float(out[0, 0])

    def is_speech(self, frame: np.ndarray) -> bool:
        return self.speech_prob(frame) >= self.threshold
