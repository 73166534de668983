"""Issue 4: remote providers against in-test servers that speak the real protocols.

- google: a gRPC server implementing `google.cloud.speech.v1.Speech` with the client library's own
  request/response types; the hub reaches it via `api_endpoint` + `insecure` (anonymous credentials).
- funasr: a WebSocket server speaking FunASR's runtime protocol (config JSON, binary PCM,
  `{"is_speaking": false}`; JSON results with mode/text/is_final/timestamp).
Both check that the audio arrives in the right format (it must be a stretch of the samples the client
sent), and their replies must come out as the hub's partial and final events.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest
from websockets.exceptions import ConnectionClosed

from tests.support import HubProcess, base_config, client_stream, clip, finals, free_port, load_pcm16, running


@dataclass
class Call:
    config: Any = None
    audio: bytearray = field(default_factory=bytearray)
    end_flag: bool = False


# -- Google Speech v1 -------------------------------------------------------------------------------
class FakeGoogleSpeech:
    """Interim result "partial <n>" every 0.5 s of audio; at the end one final "heard <ms> milliseconds"
    with word offsets at 100-400 ms and 400-900 ms of the stream."""

    def __init__(self) -> None:
        from google.cloud import speech_v1
        self.s = speech_v1
        self.calls: list[Call] = []

    def streaming_recognize(self, requests: Iterator[Any], context: Any) -> Iterator[Any]:
        s = self.s
        call = Call()
        self.calls.append(call)
        first = next(requests)
        call.config = first.streaming_config
        n = 0
        for req in requests:
            assert not req.streaming_config.config.sample_rate_hertz, "config only in the first request"
            call.audio += req.audio_content
            while len(call.audio) >= (n + 1) * 16000:
                n += 1
                yield s.StreamingRecognizeResponse(results=[s.StreamingRecognitionResult(
                    alternatives=[s.SpeechRecognitionAlternative(transcript=f"partial {n}")],
                    is_final=False, stability=0.5)])
        ms = len(call.audio) // 32
        words = [s.WordInfo(word="heard", start_time=datetime.timedelta(milliseconds=100),
                            end_time=datetime.timedelta(milliseconds=400), confidence=0.9),
                 s.WordInfo(word=f"{ms}", start_time=datetime.timedelta(milliseconds=400),
                            end_time=datetime.timedelta(milliseconds=900), confidence=0.8)]
        yield s.StreamingRecognizeResponse(results=[s.StreamingRecognitionResult(
            alternatives=[s.SpeechRecognitionAlternative(transcript=f"heard {ms}", confidence=0.85, words=words)],
            is_final=True)])

    def serve(self) -> tuple[Any, int]:
        import grpc
        s = self.s
        handler = grpc.method_handlers_generic_handler("google.cloud.speech.v1.Speech", {
            "StreamingRecognize": grpc.stream_stream_rpc_method_handler(
                self.streaming_recognize, request_deserializer=s.StreamingRecognizeRequest.deserialize,
                response_serializer=s.StreamingRecognizeResponse.serialize),
        })
        server = grpc.server(ThreadPoolExecutor(4))
        server.add_generic_rpc_handlers((handler,))
        port = server.add_insecure_port("127.0.0.1:0")
        server.start()
        return server, port


# -- FunASR runtime -----------------------------------------------------------------------------------
class FakeFunASR:
    """2pass: a "2pass-online" increment per 600 ms of audio, then after the end flag one
    "2pass-offline" result with per-character timestamps and is_final."""

    def __init__(self) -> None:
        self.calls: list[Call] = []

    def handle(self, ws: Any) -> None:
        call = Call()
        self.calls.append(call)
        try:
            call.config = json.loads(ws.recv())
        except ConnectionClosed:
            return
        sent = 0
        for msg in ws:
            if isinstance(msg, str):
                if json.loads(msg).get("is_speaking") is False:
                    call.end_flag = True
                    break
                continue
            call.audio += msg
            while len(call.audio) >= (sent + 1) * 19200:
                sent += 1
                ws.send(json.dumps({"mode": "2pass-online", "text": "你" if sent % 2 else "好",
                                    "wav_name": call.config["wav_name"], "is_final": False}))
        ws.send(json.dumps({"mode": "2pass-offline", "text": "你好，世界。", "wav_name": call.config["wav_name"],
                            "is_final": True, "timestamp": "[[100,200],[200,300],[300,400],[400,500]]"}))

    def serve(self) -> tuple[Any, int]:
        from websockets.sync.server import serve
        port = free_port()
        server = serve(self.handle, "127.0.0.1", port, subprotocols=["binary"])  # type: ignore[list-item]
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return server, port


@pytest.fixture(scope="module")
def servers() -> Iterator[tuple[FakeGoogleSpeech, int, FakeFunASR, int]]:
    g = FakeGoogleSpeech()
    gs, gport = g.serve()
    f = FakeFunASR()
    fs, fport = f.serve()
    yield g, gport, f, fport
    gs.stop(0)
    fs.shutdown()


@pytest.fixture(scope="module")
def hub(servers: tuple, tmp_path_factory: pytest.TempPathFactory) -> Iterator[HubProcess]:
    _, gport, _, fport = servers
    providers = f"""
providers:
  default: google
  instances:
    google:
      api_endpoint: "127.0.0.1:{gport}"
      insecure: true
      language: en-US
    funasr:
      url: "ws://127.0.0.1:{fport}"
      mode: 2pass
      hotwords: {{"阿里巴巴": 20}}
      itn: false
"""
    yield from running(base_config(providers=providers), tmp_path_factory.mktemp("remote"))


def is_slice_of(received: bytes, sent: bytes) -> bool:
    """True when `received` is a stretch of `sent` as 16 kHz s16le samples (the hub's float round trip
    may change a sample by one step)."""
    r = np.frombuffer(received, dtype=np.int16).astype(np.float64)
    s = np.frombuffer(sent, dtype=np.int16).astype(np.float64)
    if len(r) == 0 or len(r) > len(s):
        return False
    n = 1 << int(np.ceil(np.log2(len(s) + len(r))))
    corr = np.fft.irfft(np.fft.rfft(s, n) * np.conj(np.fft.rfft(r, n)), n)[: len(s) - len(r) + 1]
    off = int(np.argmax(corr))
    return bool(np.max(np.abs(s[off:off + len(r)] - r)) <= 2)


def _stream(h: HubProcess, name: str, start: dict) -> tuple[bytes, list[dict]]:
    pcm = load_pcm16(clip(name).path).tobytes()
    events = asyncio.run(client_stream(h.http, pcm, start=start, realtime=2.0, chunk_bytes=3200, timeout=60))
    assert "error" not in [e["type"] for e in events], events
    return pcm, events


def test_google_streaming_recognize(hub: HubProcess, servers: tuple) -> None:
    g: FakeGoogleSpeech = servers[0]
    pcm, events = _stream(hub, "en_libri_1221", {"language": "en-GB", "word_timestamps": True,
                                                 "hotwords": ["Hester Prynne"]})
    assert events[0]["provider"] == "google"
    assert len(g.calls) >= 1
    call = g.calls[-1]
    cfg = call.config
    assert cfg.interim_results is True and cfg.single_utterance is False
    assert cfg.config.encoding == g.s.RecognitionConfig.AudioEncoding.LINEAR16
    assert cfg.config.sample_rate_hertz == 16000 and cfg.config.language_code == "en-GB"   # from `start`
    assert cfg.config.enable_word_time_offsets is True
    assert [list(c.phrases) for c in cfg.config.speech_contexts] == [["Hester Prynne"]]  # session hotwords
    assert len(call.audio) > 32000 and is_slice_of(bytes(call.audio), pcm)   # the utterance's real samples, s16le 16 kHz

    fins = finals(events)
    assert len(fins) == len(g.calls)
    f = fins[-1]
    ms = len(call.audio) // 32
    assert f["text"] == f"heard {ms}" and f["provider"] == "google"
    assert [w["word"] for w in f["words"]] == ["heard", str(ms)]
    assert f["words"][0]["start_ms"] == f["start_ms"] + 100 and f["words"][1]["end_ms"] == f["start_ms"] + 900
    partials = [e for e in events if e["type"] == "transcript.partial" and e["utterance_id"] == f["utterance_id"]]
    assert partials and partials[0]["text"] == "partial 1"


def test_funasr_runtime_websocket_protocol(hub: HubProcess, servers: tuple) -> None:
    fa: FakeFunASR = servers[2]
    pcm, events = _stream(hub, "zh_aishell_BAC009S0724W0121", {"provider": "funasr", "language": "zh",
                                                                  "word_timestamps": True, "hotwords": ["达摩院"]})
    assert events[0]["provider"] == "funasr"
    calls = [c for c in fa.calls if c.config]   # the hub's health probe connects without a session
    call = calls[-1]
    c = call.config
    assert c["mode"] == "2pass" and c["is_speaking"] is True and c["wav_format"] == "pcm"
    assert c["audio_fs"] == 16000 and c["chunk_size"] == [5, 10, 5] and c["chunk_interval"] == 10
    assert json.loads(c["hotwords"]) == {"阿里巴巴": 20, "达摩院": 20} and c["itn"] is False  # config + session
    assert c["svs_lang"] == "zh" and c["wav_name"].endswith("-u1")
    assert call.end_flag
    assert len(call.audio) > 32000 and is_slice_of(bytes(call.audio), pcm)

    fins = finals(events)
    assert len(fins) == len(calls) == 1
    f = fins[0]
    assert f["text"] == "你好，世界。" and f["provider"] == "funasr"
    assert [w["word"] for w in f["words"]] == ["你", "好", "世", "界"]
    assert f["words"][0]["start_ms"] == f["start_ms"] + 100
    partials = [e["text"] for e in events if e["type"] == "transcript.partial"]
    assert partials and partials[0] == "你" and "你好" in partials
