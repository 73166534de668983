"""pipecat's Deepgram STT service pointed at the hub (docs/INTEGRATIONS.md, docs/PROTOCOL.md §9).

    python examples/pipecat_deepgram_stt.py http://127.0.0.1:8000 <api-key> speech.wav

`DeepgramSTTService(base_url=<hub>)` streams the pipeline's input audio over the hub's Deepgram socket
(GET /v1/listen) and pushes the interim and final `Results` on as transcription frames. Here a pipeline of
that service and a collector is fed a 16-bit WAV file at `pace` x real time, as a transport would; when the
speech is over a `VADUserStoppedSpeakingFrame` (what pipecat's VAD emits) makes the service send
`Finalize`, and the hub's answer comes back marked `from_finalize`."""

from __future__ import annotations

import asyncio
import sys
import wave

from pipecat.frames.frames import (
    Frame,
    InputAudioRawFrame,
    InterimTranscriptionFrame,
    TranscriptionFrame,
    VADUserStoppedSpeakingFrame,
)
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.worker import PipelineParams, PipelineWorker
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
from pipecat.services.deepgram.stt import DeepgramSTTService
from pipecat.transcriptions.language import Language
from pipecat.workers.runner import WorkerRunner


class Heard:
    """What came out of the pipeline: the final transcription frames, and how many interim ones."""

    def __init__(self) -> None:
        self.finals: list[TranscriptionFrame] = []
        self.interims = 0


class Collector(FrameProcessor):
    """The end of the pipeline: keeps the transcription frames; `finalized` is set by the answer to Finalize."""

    def __init__(self) -> None:
        super().__init__()
        self.heard = Heard()
        self.finalized = asyncio.Event()

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, TranscriptionFrame):
            self.heard.finals.append(frame)
            if frame.result is not None and frame.result.from_finalize:
                self.finalized.set()
        elif isinstance(frame, InterimTranscriptionFrame):
            self.heard.interims += 1
        await self.push_frame(frame, direction)


def read_pcm(path: str) -> tuple[bytes, int]:
    """A 16-bit mono PCM WAV file's samples and rate."""
    with wave.open(path, "rb") as w:
        assert w.getsampwidth() == 2 and w.getnchannels() == 1, "a 16-bit mono WAV file"
        return w.readframes(w.getnframes()), w.getframerate()


async def transcribe(hub: str, api_key: str, pcm: bytes, rate: int = 16000, pace: float = 4.0,
                     timeout: float = 60.0) -> Heard:  # noqa: ASYNC109
    """16-bit mono samples at `rate` through a pipecat pipeline whose STT is the hub's Deepgram socket."""
    stt = DeepgramSTTService(api_key=api_key, base_url=hub,
                             settings=DeepgramSTTService.Settings(model="nova-3", language=Language.EN))
    collector = Collector()
    worker = PipelineWorker(Pipeline([stt, collector]), params=PipelineParams(audio_in_sample_rate=rate),
                            cancel_on_idle_timeout=False)
    started = asyncio.Event()

    @worker.event_handler("on_pipeline_started")
    async def _started(_worker: PipelineWorker, _frame: Frame) -> None:
        started.set()

    async def speak() -> None:
        await asyncio.wait_for(started.wait(), timeout)
        step = rate // 50 * 2  # 20 ms of samples, as a transport delivers them
        for i in range(0, len(pcm), step):
            await worker.queue_frame(InputAudioRawFrame(audio=pcm[i:i + step], sample_rate=rate, num_channels=1))
            await asyncio.sleep(0.02 / pace)
        await worker.queue_frame(VADUserStoppedSpeakingFrame())  # the user stopped: DeepgramSTTService finalizes
        try:
            await asyncio.wait_for(collector.finalized.wait(), timeout)
        finally:
            await worker.stop_when_done()  # EndFrame: the service sends CloseStream and closes

    runner = WorkerRunner(handle_sigint=False)
    await runner.add_workers(worker)
    await asyncio.gather(runner.run(), speak())
    return collector.heard


if __name__ == "__main__":
    samples, sample_rate = read_pcm(sys.argv[3])
    heard = asyncio.run(transcribe(sys.argv[1], sys.argv[2], samples, sample_rate))
    print(" ".join(f.text for f in heard.finals), f"({heard.interims} interim results)")
