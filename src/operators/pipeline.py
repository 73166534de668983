"""The per-session pipeline: decode -> downmix -> resample -> VAD/endpoint (-> wake word gate).

Stages are plain synchronous transforms run on the event loop: each costs microseconds per chunk, so
an async hop per stage would cost more than the work. Output is a list of Items in timeline order.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..core.audio import AudioChunk, float_to_int16
from ..core.commands import AudioSpec, VadOptions
from ..core.config import LimitsConfig, PipelineConfig
from ..core.errors import ErrorCode, HubError
from .base import FrameClassifier, Item
from .decode import Decoder, make_decoder
from .endpoint import Endpointer, EndpointOptions
from .resample import Resampler, downmix
from .vad_webrtc import WebRtcVad

SUPPORTED_RATES = (8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000, 88200, 96000, 192000)


def validate_audio_spec(spec: AudioSpec, limits: LimitsConfig) -> None:
    if spec.encoding in ("pcm_s16le", "pcm_f32le", "opus"):
        if not 4000 <= spec.sample_rate <= limits.max_sample_rate:
            raise HubError(ErrorCode.invalid_command,
                           f"audio.sample_rate {spec.sample_rate} is out of range (4000..{limits.max_sample_rate})")
    if not 1 <= spec.channels <= limits.max_channels:
        raise HubError(ErrorCode.invalid_command,
                       f"audio.channels {spec.channels} is out of range (1..{limits.max_channels})")


@dataclass
class PipelineSpec:
    audio: AudioSpec
    vad: EndpointOptions
    vad_kind: str
    vad_aggressiveness: int
    vad_threshold: float


def build_spec(audio: AudioSpec, overrides: VadOptions, cfg: PipelineConfig) -> PipelineSpec:
    v = cfg.vad
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
    )


def make_classifier(spec: PipelineSpec) -> FrameClassifier | None:
    if not spec.vad.enabled:
        return None
    if spec.vad_kind == "silero":
        from .vad_silero import SileroVad
        return SileroVad(threshold=spec.vad_threshold)
    return WebRtcVad(spec.vad_aggressiveness)


class Pipeline:
    def __init__(self, spec: PipelineSpec) -> None:
        self.spec = spec
        a = spec.audio
        self.decoder: Decoder = make_decoder(a.encoding, a.sample_rate, a.channels)
        self._resampler: Resampler | None = None
        self.endpointer = Endpointer(make_classifier(spec), spec.vad)
        self.offset = 0  # samples at the hub rate produced so far

    def _normalise(self, frames: np.ndarray, last: bool = False) -> AudioChunk | None:
        if self._resampler is None:
            self._resampler = Resampler(self.decoder.sample_rate)
        mono = self._resampler.process(downmix(frames), last=last)
        if len(mono) == 0:
            return None
        chunk = AudioChunk(float_to_int16(mono), self.offset)
        self.offset += len(mono)
        return chunk

    def push(self, data: bytes) -> list[Item]:
        frames = self.decoder.feed(data)
        if len(frames) == 0:
            return []
        chunk = self._normalise(frames)
        return self.endpointer.push(chunk) if chunk is not None else []

    def flush(self) -> list[Item]:
        return self.endpointer.flush(self.offset)

    def close(self) -> list[Item]:
        """End of stream: drain the decoder and resampler, then end any open utterance."""
        out: list[Item] = []
        frames = self.decoder.close()
        chunk = self._normalise(frames if len(frames) else np.zeros((0, 1), dtype=np.float32), last=True) \
            if (len(frames) or self._resampler is not None) else None
        if chunk is not None:
            out.extend(self.endpointer.push(chunk))
        out.extend(self.endpointer.flush(self.offset))
        return out
