"""BatchProvider: a provider whose model decodes whole utterances; StreamAdapter makes it stream."""

from __future__ import annotations

import abc
import time

import numpy as np

from ..core.audio import HUB_RATE, RingBuffer, int16_to_float
from ..core.work import Batch
from .base import Provider, ProviderStream, Result, StreamOptions, StreamSink, TranscribeOptions
from .streaming import StreamAdapter


class BatchProvider(Provider):
    """A provider whose model decodes whole utterances; streaming comes from StreamAdapter."""

    left_context_s: float = 0.0  # see BatchDecoder: 2-pass finals, for providers that honour `prefix`

    @abc.abstractmethod
    def decode(self, audio: np.ndarray, opts: TranscribeOptions) -> Result:
        """Blocking decode of float32 mono 16 kHz audio. Runs in the scheduler's executor."""

    def timed_decode(self, audio: np.ndarray, opts: TranscribeOptions) -> Result:
        """`decode` with its cost counted in `stats` (real-time factor)."""
        t0 = time.perf_counter()
        try:
            return self.decode(audio, opts)
        finally:
            self.stats.add(time.perf_counter() - t0, len(audio) / HUB_RATE, opts.interim)

    def batch(self, audio: np.ndarray, opts: TranscribeOptions) -> Batch | None:
        """How this decode may be batched with others (None: it may not)."""
        return None

    async def transcribe(self, audio: np.ndarray, opts: TranscribeOptions) -> Result:
        pcm = int16_to_float(audio) if audio.dtype == np.int16 else audio.astype(np.float32)
        fut = self.scheduler.submit(lambda: self.timed_decode(pcm, opts), final=True, batch=self.batch(pcm, opts))
        assert fut is not None
        return await fut

    def open_stream(self, opts: StreamOptions, sink: StreamSink, ring: RingBuffer) -> ProviderStream:
        return StreamAdapter(self, opts, sink, ring)
