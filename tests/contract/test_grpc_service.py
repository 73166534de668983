"""Issue 3: the gRPC server beyond streaming — health, reflection, Recognize, ListProviders."""

from __future__ import annotations

from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from asrhub.engine.transcribe import MAX_UPLOAD_BYTES
from tests.support import HubProcess, clip, load_pcm16, wer


@pytest.fixture
async def channel(hub: HubProcess) -> Any:
    ch = grpc.aio.insecure_channel(f"127.0.0.1:{hub.grpc_port}")
    yield ch
    await ch.close()


@pytest.fixture(scope="module")
def stubs() -> tuple[Any, Any]:
    from asrhub.wire import grpc_gen
    return grpc_gen.load()


async def test_health_serving(channel: Any) -> None:
    stub = health_pb2_grpc.HealthStub(channel)
    for service in ("", "asrhub.v1.AsrHub"):
        res = await stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=10)
        assert res.status == health_pb2.HealthCheckResponse.SERVING, service
    with pytest.raises(grpc.aio.AioRpcError) as exc:
        await stub.Check(health_pb2.HealthCheckRequest(service="no.such.Service"), timeout=10)
    assert exc.value.code() == grpc.StatusCode.NOT_FOUND


async def test_reflection_lists_and_describes_the_service(channel: Any) -> None:
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)
    reqs = [reflection_pb2.ServerReflectionRequest(list_services=""),
            reflection_pb2.ServerReflectionRequest(file_containing_symbol="asrhub.v1.AsrHub")]
    answers = [a async for a in stub.ServerReflectionInfo(iter(reqs), timeout=10)]
    names = {s.name for s in answers[0].list_services_response.service}
    assert {"asrhub.v1.AsrHub", "grpc.health.v1.Health"} <= names
    from google.protobuf import descriptor_pb2
    fd = descriptor_pb2.FileDescriptorProto.FromString(answers[1].file_descriptor_response.file_descriptor_proto[0])
    assert fd.package == "asrhub.v1"
    methods = {m.name for s in fd.service for m in s.method}
    assert methods == {"StreamingRecognize", "Recognize", "ListProviders"}


async def test_recognize_whole_file(channel: Any, stubs: tuple[Any, Any]) -> None:
    pb, pb_grpc = stubs
    stub = pb_grpc.AsrHubStub(channel)
    c = clip("en_libri_1089-134691")
    res = await stub.Recognize(pb.RecognizeRequest(audio=c.path.read_bytes(), language="en"), timeout=120)
    assert wer([c.transcript], [res.text]) < 0.2, res.text
    assert res.provider == "faster_whisper" and res.language == "en"
    assert abs(res.duration_ms - c.seconds * 1000) < 100
    assert res.segments and res.words and res.words[0].end_ms >= res.words[0].start_ms


async def test_recognize_errors_carry_the_code(channel: Any, stubs: tuple[Any, Any]) -> None:
    pb, pb_grpc = stubs
    stub = pb_grpc.AsrHubStub(channel)
    for req, status, code in [
        (pb.RecognizeRequest(audio=b"RIFF", provider="nope"), grpc.StatusCode.NOT_FOUND, "unknown_provider"),
        (pb.RecognizeRequest(audio=b"definitely not audio"), grpc.StatusCode.INVALID_ARGUMENT, "invalid_audio"),
    ]:
        with pytest.raises(grpc.aio.AioRpcError) as exc:
            await stub.Recognize(req, timeout=30)
        assert exc.value.code() == status
        assert dict(exc.value.trailing_metadata() or ())["asrhub-error-code"] == code


async def test_oversized_messages_carry_the_code(channel: Any, stubs: tuple[Any, Any]) -> None:
    """A message over the hub's gRPC limit (the largest upload + 1 MiB) is refused by the hub, not by grpc's own
    size check: Recognize ends with RESOURCE_EXHAUSTED *and* `asrhub-error-code: payload_too_large`; inside
    StreamingRecognize it is a payload_too_large `error` event and the session goes on."""
    pb, pb_grpc = stubs
    stub = pb_grpc.AsrHubStub(channel)
    big = bytes(MAX_UPLOAD_BYTES + 2 * 1024 * 1024)
    with pytest.raises(grpc.aio.AioRpcError) as exc:
        await stub.Recognize(pb.RecognizeRequest(audio=big), timeout=120)
    assert exc.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert dict(exc.value.trailing_metadata() or ())["asrhub-error-code"] == "payload_too_large"
    assert "exceeds the limit" in (exc.value.details() or "")

    pcm = load_pcm16(clip("en_libri_1221").path).tobytes()

    async def requests() -> Any:
        yield pb.StreamingRequest(start=pb.StartSession(audio=pb.AudioSpec(encoding="pcm_s16le", sample_rate=16000),
                                                        vad=pb.VadOptions(silence_ms=400), record=False,
                                                        wakeword=pb.WakewordOptions(enabled=False)))
        yield pb.StreamingRequest(audio=big)
        for i in range(0, len(pcm), 16000):
            yield pb.StreamingRequest(audio=pcm[i:i + 16000])

    events = [ev async for ev in stub.StreamingRecognize(requests(), timeout=120)]
    errors = [e.error for e in events if e.type == "error"]
    assert [e.code for e in errors] == ["payload_too_large"] and not errors[0].fatal, errors
    assert [e for e in events if e.type == "transcript.final"], events  # the session went on
    assert events[-1].type == "session.ended" and events[-1].session_ended.reason == "stop"


async def test_list_providers(channel: Any, stubs: tuple[Any, Any]) -> None:
    pb, pb_grpc = stubs
    res = await pb_grpc.AsrHubStub(channel).ListProviders(pb.ListProvidersRequest(), timeout=10)
    fw = next(p for p in res.providers if p.name == "faster_whisper")
    assert fw.status == "available" and fw.is_default and fw.capabilities.streaming
    assert "en" in fw.capabilities.languages


async def test_half_close_counts_as_stop(channel: Any, stubs: tuple[Any, Any]) -> None:
    pb, pb_grpc = stubs
    pcm = load_pcm16(clip("en_libri_1221").path).tobytes()

    async def requests() -> Any:
        yield pb.StreamingRequest(start=pb.StartSession(audio=pb.AudioSpec(encoding="pcm_s16le", sample_rate=16000),
                                                        vad=pb.VadOptions(silence_ms=400), record=False,
                                                        wakeword=pb.WakewordOptions(enabled=False)))
        for i in range(0, len(pcm), 16000):
            yield pb.StreamingRequest(audio=pcm[i:i + 16000])

    events = [ev async for ev in pb_grpc.AsrHubStub(channel).StreamingRecognize(requests(), timeout=120)]
    assert events[0].type == "session.started" and events[0].session_started.audio.sample_rate == 16000
    assert events[-1].type == "session.ended" and events[-1].session_ended.reason == "stop"
    finals = [e.transcript for e in events if e.type == "transcript.final"]
    assert finals and all(f.is_final for f in finals)
    assert [e.seq for e in events] == list(range(1, len(events) + 1))


def test_proto_start_session_matches_the_json_contract(stubs: tuple[Any, Any]) -> None:
    """Every StartSession field of the JSON contract exists in the .proto under the same name (and
    vice versa), so a field added to one is not silently missing from gRPC."""
    from pydantic import BaseModel

    from asrhub.core import commands

    pb, _ = stubs
    pairs = [(commands.StartSession, pb.StartSession), (commands.AudioSpec, pb.AudioSpec),
             (commands.VadOptions, pb.VadOptions), (commands.ResumeSpec, pb.Resume)]
    if hasattr(commands, "WakewordOptions"):
        pairs.append((commands.WakewordOptions, pb.WakewordOptions))
    for model, message in pairs:
        assert issubclass(model, BaseModel)
        assert set(model.model_fields) == set(message.DESCRIPTOR.fields_by_name), model.__name__
