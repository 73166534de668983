"""Google Cloud Speech-to-Text v1 provider: `StreamingRecognize` with interim results.

Each hub utterance is one streaming call (single_utterance off, interim results on, word time offsets
on): its audio goes out as LINEAR16 16 kHz mono in 100 ms requests, interim results become partials
(the finished segments so far are the stable text), and the is_final results together are the final.
Credentials come from the standard environment (Application Default Credentials,
GOOGLE_APPLICATION_CREDENTIALS) or `credentials_file`; `api_endpoint` points elsewhere, and with
`insecure: true` the client talks plaintext gRPC with anonymous credentials (emulators, tests).
Options (`GoogleOptions`): model, use_enhanced, punctuation, phrases, deadline_s; the block's `language`
(BCP-47, default en-US). A session's `hotwords` join `phrases` in its speech context.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

import numpy as np
from pydantic import Field

from ..core.audio import HUB_RATE, RingBuffer
from .base import (
    Capabilities,
    Provider,
    ProviderOptions,
    ProviderStream,
    Result,
    StreamOptions,
    StreamSink,
    TranscribeOptions,
    WordTiming,
)
from .native import Utterance, UtteranceStream

log = logging.getLogger(__name__)

REQUEST_SAMPLES = HUB_RATE // 10  # 100 ms of audio per request (Google's recommendation)


def _seconds(d: Any) -> float:
    if d is None:
        return 0.0
    if hasattr(d, "total_seconds"):
        return float(d.total_seconds())
    return float(getattr(d, "seconds", 0)) + float(getattr(d, "nanos", 0)) / 1e9


def _words(alt: Any) -> list[WordTiming]:
    return [WordTiming(w.word, int(round(_seconds(w.start_time) * 1000)), int(round(_seconds(w.end_time) * 1000)),
                       float(w.confidence or alt.confidence or 0.0)) for w in alt.words]


class GoogleOptions(ProviderOptions):
    model: str | None = None          # Google's recognition model (latest_long, phone_call, ...)
    api_endpoint: str | None = None
    insecure: bool = False            # plaintext gRPC with anonymous credentials (emulators, tests)
    credentials_file: str | None = None
    use_enhanced: bool = False
    punctuation: bool = True
    phrases: list[str] = Field(default_factory=list)  # always-on speech context (sessions add hotwords)
    deadline_s: float = Field(300.0, gt=0)
    max_concurrency: int = Field(100, ge=1)


class GoogleProvider(Provider):
    kind = "google"
    Options = GoogleOptions

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # any BCP-47 code the service knows: the API validates it, the hub does not keep a copy of the list
        self.capabilities = Capabilities(streaming=True, interim=True, word_timestamps=True, languages=("auto",),
                                         max_concurrency=int(self.options.get("max_concurrency", 100)),
                                         hotwords=True)  # hotwords: speech contexts
        self._speech: Any = None
        self._client: Any = None

    @property
    def model(self) -> str:
        return str(self.options.get("model") or "default")

    async def load(self) -> None:
        try:
            from google.cloud import speech_v1
        except ImportError:
            self.set_health("unavailable", "the 'google' extra is not installed (pip install 'asrhub[google]')")
            return
        self._speech = speech_v1
        endpoint = self.options.get("api_endpoint")
        try:
            if self.options.get("insecure"):
                if not endpoint:
                    raise RuntimeError("'insecure: true' needs 'api_endpoint' (host:port)")
                import grpc
                from google.cloud.speech_v1.services.speech.transports import SpeechGrpcAsyncIOTransport

                channel = grpc.aio.insecure_channel(str(endpoint))
                self._client = speech_v1.SpeechAsyncClient(transport=SpeechGrpcAsyncIOTransport(channel=channel))
            else:
                creds = await asyncio.to_thread(self._credentials)
                from google.api_core.client_options import ClientOptions
                opts = ClientOptions(api_endpoint=str(endpoint)) if endpoint else None
                self._client = speech_v1.SpeechAsyncClient(credentials=creds, client_options=opts)
        except Exception as e:
            self.set_health("unavailable", str(e))
            return
        self.set_health("available")

    def _credentials(self) -> Any:
        import google.auth
        from google.auth.exceptions import DefaultCredentialsError

        path = self.options.get("credentials_file")
        if path:
            from google.oauth2 import service_account
            return service_account.Credentials.from_service_account_file(
                str(path), scopes=["https://www.googleapis.com/auth/cloud-platform"])
        try:
            creds, _project = google.auth.default(scopes=["https://www.googleapis.com/auth/cloud-platform"])
        except DefaultCredentialsError as e:
            raise RuntimeError("no Google credentials: set GOOGLE_APPLICATION_CREDENTIALS, run "
                               f"'gcloud auth application-default login' or give 'credentials_file' ({e})") from None
        return creds

    async def close(self) -> None:
        if self._client is not None:
            try:
                await self._client.transport.close()
            except Exception:
                log.debug("closing the google transport failed", exc_info=True)
            self._client = None

    def recognition_config(self, language: str | None, words: bool, hotwords: tuple[str, ...] = ()) -> Any:
        s = self._speech
        lang = language or self.language or "en-US"
        if lang == "auto":
            lang = "en-US"
        kwargs: dict[str, Any] = {
            "encoding": s.RecognitionConfig.AudioEncoding.LINEAR16, "sample_rate_hertz": HUB_RATE,
            "audio_channel_count": 1, "language_code": lang, "enable_word_time_offsets": words,
            "enable_automatic_punctuation": bool(self.options.get("punctuation", True)), "max_alternatives": 1,
        }
        if self.options.get("model"):
            kwargs["model"] = str(self.options["model"])
        if self.options.get("use_enhanced"):
            kwargs["use_enhanced"] = True
        phrases = [*(str(p) for p in self.options.get("phrases") or ()), *hotwords]
        if phrases:
            kwargs["speech_contexts"] = [s.SpeechContext(phrases=phrases)]
        return s.RecognitionConfig(**kwargs)

    @property
    def deadline_s(self) -> float:
        return float(self.options.get("deadline_s", 300.0))

    async def transcribe(self, audio: np.ndarray, opts: TranscribeOptions) -> Result:
        if self._client is None:
            raise RuntimeError(f"provider {self.name} is not loaded")
        pcm = audio if audio.dtype == np.int16 else (np.clip(audio, -1, 1) * 32767).astype(np.int16)
        resp = await self._client.recognize(config=self.recognition_config(opts.language, True, opts.hotwords),
                                            audio=self._speech.RecognitionAudio(content=pcm.tobytes()),
                                            timeout=self.deadline_s)
        texts: list[str] = []
        words: list[WordTiming] = []
        for r in resp.results:
            if r.alternatives:
                texts.append(r.alternatives[0].transcript.strip())
                words += _words(r.alternatives[0])
        return Result(" ".join(t for t in texts if t), words if opts.word_timestamps else [],
                      language=opts.language or self.language, duration_ms=int(len(pcm) * 1000 / HUB_RATE))

    def open_stream(self, opts: StreamOptions, sink: StreamSink, ring: RingBuffer) -> ProviderStream:
        if self._client is None:
            raise RuntimeError(f"provider {self.name} is not loaded")
        return GoogleStream(self, opts, sink, ring)


class GoogleStream(UtteranceStream):
    provider: GoogleProvider

    async def recognize(self, utt: Utterance) -> Result:
        p = self.provider
        s = p._speech
        streaming = s.StreamingRecognitionConfig(
            config=p.recognition_config(self.opts.locale or self.opts.language, True, self.opts.hotwords),
            interim_results=self.opts.interim_results, single_utterance=False)

        async def requests() -> AsyncIterator[Any]:
            yield s.StreamingRecognizeRequest(streaming_config=streaming)
            while (pieces := await utt.chunks()) is not None:
                pcm = np.concatenate(pieces).astype(np.int16, copy=False)
                for i in range(0, len(pcm), REQUEST_SAMPLES):
                    yield s.StreamingRecognizeRequest(audio_content=pcm[i:i + REQUEST_SAMPLES].tobytes())

        finals: list[str] = []
        words: list[WordTiming] = []
        responses = await p._client.streaming_recognize(requests=requests(), timeout=p.deadline_s)
        async for resp in responses:
            if resp.error and resp.error.code:
                raise RuntimeError(f"google speech error {resp.error.code}: {resp.error.message}")
            interim: list[str] = []
            for r in resp.results:
                if not r.alternatives:
                    continue
                alt = r.alternatives[0]
                if r.is_final:
                    finals.append(alt.transcript.strip())
                    words += _words(alt)
                else:
                    interim.append(alt.transcript.strip())
            if resp.results:
                self.partial(utt, " ".join(t for t in [*finals, *interim] if t), " ".join(t for t in finals if t))
        return Result(" ".join(t for t in finals if t), words,
                      language=self.opts.language or p.language)
