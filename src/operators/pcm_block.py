"""PcmBlock: a piece of decoded audio as float32 samples."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..core.errors import ErrorCode, HubError


@dataclass(frozen=True)
class PcmBlock:
    """Decoded audio: float32 samples in [-1, 1], shape (n, channels)."""

    samples: np.ndarray
    sample_rate: int

    @property
    def channels(self) -> int:
        return int(self.samples.shape[1])

    @property
    def frames(self) -> int:
        return int(self.samples.shape[0])

    @property
    def seconds(self) -> float:
        return self.samples.shape[0] / self.sample_rate


def concat_blocks(blocks: list[PcmBlock]) -> PcmBlock:
    """Join blocks that share sample rate and channel count into one block."""
    if not blocks:
        raise HubError(ErrorCode.invalid_audio, "no audio")
    first = blocks[0]
    if any(b.sample_rate != first.sample_rate or b.channels != first.channels for b in blocks):
        raise HubError(ErrorCode.invalid_audio, "audio changes sample rate or channel count mid-stream")
    if len(blocks) == 1:
        return first
    return PcmBlock(np.concatenate([b.samples for b in blocks]), first.sample_rate)
