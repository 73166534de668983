"""The per-session pipeline: decode -> downmix -> resample, then the configured stages in order.

`pipeline.order` (default `[wakeword, vad, recorder]`) places the optional stages; each is a plain
synchronous transform over the item list (audio chunks and markers in timeline order), run on the event
loop: each costs microseconds per chunk, so an async hop per stage would cost more than the work.

- `vad`: the VAD + endpointer (always present; with `vad.enabled: false` every chunk is speech);
- `wakeword`: the wake-word gate (`wake_gate.py`); before `vad` the VAD only ever sees audio inside a
  listening window; after `vad` the VAD runs on everything and the gate drops utterances while armed;
- `recorder`: writes the audio that reaches it (before `wakeword`: everything; after it: only
  listening windows); per-utterance files need it after `vad` (it cuts at the utterance markers).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from ..core.audio import AudioChunk, float_to_int16
from ..core.commands import AudioSpec, TurnOptions, VadOptions, WakewordOptions
from ..core.config import PipelineConfig
from ..core.errors import ErrorCode, HubError
from ..core.validation import validate_audio_spec
from .base import FrameClassifier, Gated, Item
from .decode import Decoder, make_decoder
from .endpoint import Endpointer, EndpointOptions, EndpointStage
from .recorder import Recorder, get_store
from .requirements import OperatorUnavailable, load_required, required_loaders
from .resample import Resampler, downmix
from .turn import TurnSettings, TurnStage, turn_options
from .vad_webrtc import WebRtcVad
from .wake_gate import WakeGate, WakeOptions
from .wakeword import check_phrase

log = logging.getLogger(__name__)

__all__ = ["Pipeline", "PipelineSpec", "build_spec", "validate_audio_spec"]

SUPPORTED_RATES = (8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000, 88200, 96000, 192000)


@dataclass
class RecordSpec:
    folder: str
    per: str
    max_total_mb: float


@dataclass
class TurnSpec:
    """Semantic turn mode: the model's settings and where its weights are ("": in the pipecat-ai package)."""

    eagerness: str
    options: TurnSettings
    model_path: str = ""


@dataclass
class PipelineSpec:
    audio: AudioSpec
    vad: EndpointOptions
    vad_kind: str
    vad_aggressiveness: int
    vad_threshold: float
    order: tuple[str, ...] = ("wakeword", "vad", "recorder")
    wake: WakeOptions | None = None
    record: RecordSpec | None = None
    turn: TurnSpec | None = None  # None: silence mode


def build_turn(turn: TurnOptions | None, cfg: PipelineConfig, vad_on: bool) -> TurnSpec | None:
    """Semantic turn mode's settings (config pipeline.turn with the session's `turn` applied), None in silence
    mode. A session's min/max_silence_ms mean nothing in silence mode, and semantic mode needs the VAD."""
    t, c = turn or TurnOptions(), cfg.turn
    # the config's semantic default does not apply to a session without the VAD (push-to-talk, manual commit)
    if (t.mode or c.mode) == "silence" or (t.mode is None and not vad_on):
        for name in ("min_silence_ms", "max_silence_ms"):
            if getattr(t, name) is not None:
                raise HubError(ErrorCode.invalid_command, f"turn.{name} applies to turn.mode 'semantic' only "
                               "(silence mode ends an utterance after vad.silence_ms)")
        return None
    if not vad_on:
        raise HubError(ErrorCode.invalid_command, "turn.mode 'semantic' needs the VAD (vad.enabled: true)")
    eagerness = t.eagerness or c.eagerness
    lo = t.min_silence_ms if t.min_silence_ms is not None else c.min_silence_ms
    hi = t.max_silence_ms if t.max_silence_ms is not None else c.max_silence_ms
    return TurnSpec(eagerness, turn_options(eagerness, lo, hi), c.model_path)


def build_spec(audio: AudioSpec, overrides: VadOptions, cfg: PipelineConfig,
               wakeword: WakewordOptions | None = None, record: bool | None = None,
               turn: TurnOptions | None = None) -> PipelineSpec:
    """The session's effective pipeline: config defaults with the session's overrides applied."""
    v = cfg.vad
    w = cfg.wakeword
    wo = wakeword or WakewordOptions()
    wake_on = w.enabled if wo.enabled is None else wo.enabled
    r = cfg.recorder
    record_on = r.enabled if record is None else record
    return PipelineSpec(
        audio=audio,
        vad=EndpointOptions(
            enabled=v.enabled and overrides.enabled,
            min_speech_ms=overrides.min_speech_ms if overrides.min_speech_ms is not None else v.min_speech_ms,
            silence_ms=overrides.silence_ms if overrides.silence_ms is not None else v.silence_ms,
            pre_roll_ms=overrides.pre_roll_ms if overrides.pre_roll_ms is not None else v.pre_roll_ms,
            max_utterance_s=overrides.max_utterance_s if overrides.max_utterance_s is not None else v.max_utterance_s,
        ),
        vad_kind=overrides.kind or v.kind,
        vad_aggressiveness=v.aggressiveness,
        vad_threshold=overrides.threshold if overrides.threshold is not None else v.threshold,
        order=tuple(cfg.order),
        wake=WakeOptions(phrase=wo.phrase or w.phrase,
                         threshold=wo.threshold if wo.threshold is not None else w.threshold,
                         window_s=wo.window_s if wo.window_s is not None else w.window_s,
                         kind=w.kind) if wake_on else None,
        record=RecordSpec(r.folder, r.per, r.max_total_mb) if record_on else None,
        turn=build_turn(turn, cfg, v.enabled and overrides.enabled),
    )


def make_classifier(spec: PipelineSpec) -> FrameClassifier | None:
    if not spec.vad.enabled:
        return None
    if spec.vad_kind == "silero":
        from .vad_silero import SileroVad
        return SileroVad(threshold=spec.vad_threshold)
    return WebRtcVad(spec.vad_aggressiveness)


class Stage(Protocol):
    def process(self, items: list[Item]) -> list[Item]: ...

    def flush(self, items: list[Item], at: int) -> list[Item]: ...

    def close(self, items: list[Item], at: int) -> list[Item]: ...

    def release(self) -> None: ...


class Pipeline:
    """decode -> downmix -> resample, then the stages of `spec.order` that are enabled (vad always)."""

    def __init__(self, spec: PipelineSpec, session_id: str = "") -> None:
        self.spec = spec
        a = spec.audio
        self.decoder: Decoder = make_decoder(a.encoding, a.sample_rate, a.channels)
        self._resampler: Resampler | None = None
        #: where markers go that an answer of the turn model decides outside any push (set by the session)
        self.on_late: Callable[[list[Item]], None] | None = None
        classifier = make_classifier(spec)
        self.turn: TurnStage | None = None
        if spec.turn is not None:
            assert classifier is not None  # build_turn: semantic mode needs the VAD
            from .turn_model import get_runner
            runner = get_runner(spec.turn.model_path or None)
            runner.check()  # HubError(operator_unavailable) when the model cannot be had
            self.turn = TurnStage(classifier, spec.vad, spec.turn.options, runner, self._late)
            self.endpointer: Endpointer = self.turn.endpointer
        else:
            self.endpointer = Endpointer(classifier, spec.vad)
        self.gate: WakeGate | None = None
        self.recorder: Recorder | None = None
        self.stages: list[Stage] = []
        try:
            for name in spec.order:
                if name == "vad":
                    self.stages.append(self.turn if self.turn is not None else EndpointStage(self.endpointer))
                elif name == "wakeword" and spec.wake is not None:
                    self.gate = WakeGate(spec.wake, vad_upstream=spec.order.index("vad") < spec.order.index(name))
                    self.stages.append(self.gate)
                elif name == "recorder" and spec.record is not None:
                    r = spec.record
                    if r.per == "utterance" and spec.order.index("recorder") < spec.order.index("vad"):
                        raise HubError(ErrorCode.invalid_command, "recording per utterance needs the recorder "
                                       "after vad in pipeline.order")
                    v = spec.vad
                    history = (v.pre_roll_ms + v.min_speech_ms) / 1000 + 3.0
                    self.recorder = Recorder(get_store(r.folder, r.max_total_mb), session_id or uuid.uuid4().hex,
                                             r.per, history)
                    self.stages.append(self.recorder)
        except BaseException:
            self.release()
            raise
        self._feedback = self.gate is not None and not self.gate.vad_upstream
        self.offset = 0  # samples at the hub rate produced so far

    def _normalise(self, frames: np.ndarray, last: bool = False) -> AudioChunk | None:
        if self._resampler is None or self._resampler.in_rate != self.decoder.sample_rate:
            self._resampler = Resampler(self.decoder.sample_rate)
        mono = self._resampler.process(downmix(frames), last=last)
        if len(mono) == 0:
            return None
        chunk = AudioChunk(float_to_int16(mono), self.offset)
        self.offset += len(mono)
        return chunk

    def _out(self, items: list[Item]) -> list[Item]:
        """Gated audio leaves the pipeline as plain audio: it belongs to the session timeline (ring
        buffer), and no utterance is open to carry it to the provider."""
        if self._feedback:
            assert self.gate is not None
            self.gate.observe(items)
        return [it.chunk if isinstance(it, Gated) else it for it in items]

    def _late(self, items: list[Item]) -> None:
        """Markers the turn model's answer decided: through the stages after the endpointer, then out."""
        assert self.turn is not None
        for stage in self.stages[self.stages.index(self.turn) + 1:]:
            items = stage.process(items)
        items = self._out(items)
        if items and self.on_late is not None:
            self.on_late(items)

    def push(self, data: bytes) -> list[Item]:
        frames = self.decoder.feed(data)
        if len(frames) == 0:
            return []
        chunk = self._normalise(frames)
        if chunk is None:
            return []
        items: list[Item] = [chunk]
        for stage in self.stages:
            items = stage.process(items)
        return self._out(items)

    def flush(self) -> list[Item]:
        items: list[Item] = []
        for stage in self.stages:
            items = stage.flush(items, self.offset)
        return self._out(items)

    def close(self) -> list[Item]:
        """End of stream: drain the decoder and resampler, then end any open utterance."""
        frames = self.decoder.close()
        chunk = self._normalise(frames if len(frames) else np.zeros((0, 1), dtype=np.float32), last=True) \
            if (len(frames) or self._resampler is not None) else None
        items: list[Item] = [chunk] if chunk is not None else []
        for stage in self.stages:
            items = stage.close(items, self.offset)
        return self._out(items)

    def recording_for(self, start: int, end: int) -> str | None:
        """The recorder's file for the utterance [start, end), when recording."""
        return self.recorder.recording_for(start, end) if self.recorder is not None else None

    def release(self) -> None:
        """Session over: close recordings, return the wake word decoder (idempotent)."""
        for stage in self.stages:
            try:
                stage.release()
            except Exception:
                log.exception("pipeline stage %s failed to release", type(stage).__name__)


def _silero_installed() -> bool:
    import importlib.util

    return all(importlib.util.find_spec(m) is not None for m in ("silero_vad", "onnxruntime"))


def _turn_installed(model_path: str) -> bool:
    import importlib.util

    return all(importlib.util.find_spec(m) is not None for m in ("onnxruntime",)) and (
        bool(model_path) or importlib.util.find_spec("pipecat") is not None)


def prewarm_pipeline(cfg: PipelineConfig) -> list[OperatorUnavailable]:
    """Blocking loads for what `cfg` enables (run it in a worker thread at hub start or reload). An
    operator the default pipeline needs that cannot load is returned (the hub is then not ready); any
    other failure is logged, and sessions that ask for it report it themselves."""
    def wake() -> None:
        from .wakeword import prewarm
        prewarm(check_phrase(cfg.wakeword.phrase), cfg.wakeword.threshold)

    def silero() -> None:
        from .vad_silero import get_session
        get_session()

    def turn() -> None:
        from .turn_model import get_runner
        get_runner(cfg.turn.model_path or None).check()

    missing = load_required(cfg)
    required = {m.name for m in missing} | {r.name for r in required_loaders(cfg)}
    steps = [("wake word", wake, cfg.wakeword.enabled and cfg.wakeword.kind == "pocketsphinx"),
             ("recorder", lambda: get_store(cfg.recorder.folder, cfg.recorder.max_total_mb), cfg.recorder.enabled),
             # sessions may pick Silero (vad.kind) whatever the default: ~0.7 s to load
             ("silero VAD", silero, cfg.vad.enabled and _silero_installed()),
             # sessions may ask for semantic turns whatever the default: ~0.2 s to load
             ("turn model", turn, cfg.turn.mode == "semantic" or _turn_installed(cfg.turn.model_path))]
    for name, step, wanted in steps:
        if not wanted or name in required:  # a required one was loaded (or failed) above
            continue
        try:
            step()
        except Exception as e:
            log.error("pipeline: pre-loading the %s failed: %s", name, e)
    return missing
