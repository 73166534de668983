"""asrhub.client pieces that need no hub: what an audio source is declared as, how events parse, how
options map onto the gRPC StartSession, and that the client imports the wire vocabulary only."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from asrhub.client import AudioSpec, ProviderSwitched, StartSession, TranscriptFinal, parse_event
from asrhub.client.audio import prepare, sniff, wav_rate
from asrhub.client.errors import HubRequestError
from asrhub.client.grpc import start_to_proto
from asrhub.wire import grpc_gen

DATA = Path(__file__).resolve().parents[1] / "data" / "speech"


@pytest.mark.parametrize("head, kind", [
    (b"RIFF\x00\x00\x00\x00WAVEfmt ", "wav"), (b"fLaC\x00", "flac"), (b"OggS\x00", "ogg"),
    (b"\x1a\x45\xdf\xa3\x01", "webm"), (b"ID3\x04", "mp3"), (b"\xff\xfb\x90\x64", "mp3"), (b"\xff\xff\xff\xff", None),
    (b"\x00\x01\x00\x02", None), (b"", None)])
def test_sniff(head: bytes, kind: str | None) -> None:
    assert sniff(head) == kind


async def _collect(prepared: object) -> bytes:
    return b"".join([c async for c in prepared.chunks])  # type: ignore[attr-defined]


async def test_prepare_files_bytes_and_iterators(tmp_path: Path) -> None:
    flac = DATA / "en_libri_1089-134691-0001.flac"
    p = prepare(flac, None, 100)
    assert p.spec.encoding == "flac" and p.bytes_per_s is None
    assert await _collect(p) == flac.read_bytes()  # sent as it is
    wav = (DATA / "en_libri_1221-135766-0002.wav").read_bytes()
    p = prepare(wav, None, 100)
    assert p.spec.encoding == "wav" and wav_rate(wav[:4096]) == (16000, 1, 2) and p.bytes_per_s == 32000
    raw = tmp_path / "x.f32"
    raw.write_bytes(b"\x00" * 64000)
    p = prepare(raw, None, 100)
    assert p.spec.encoding == "pcm_f32le" and p.bytes_per_s == 64000
    chunks = [c async for c in p.chunks]
    assert {len(c) for c in chunks} == {6400}  # 100 ms of f32 mono 16 kHz, whole samples
    p = prepare(b"\x01\x00" * 8000, AudioSpec(encoding="pcm_s16le", sample_rate=8000), 20)
    assert p.spec.sample_rate == 8000 and p.bytes_per_s == 16000
    assert {len(c) for c in [c async for c in p.chunks]} == {320}
    ulaw = tmp_path / "call.ulaw"
    ulaw.write_bytes(b"\xff" * 8000)
    p = prepare(ulaw, None, 100)
    assert (p.spec.encoding, p.spec.sample_rate, p.bytes_per_s) == ("pcm_mulaw", 8000, 8000)
    p = prepare(iter([b"ab", b"cd"]), None, 100)
    assert p.spec.encoding == "pcm_s16le" and await _collect(p) == b"abcd"


def test_parse_event_types_and_newer_fields() -> None:
    ev = parse_event({"type": "transcript.final", "session_id": "s", "seq": 4, "ts": 1.0, "utterance_id": "u",
                      "text": "hi", "start_ms": 0, "end_ms": 10, "provider": "p", "latency_ms": 5,
                      "a_field_from_a_newer_hub": 1})
    assert isinstance(ev, TranscriptFinal) and ev.text == "hi"
    sw = parse_event({"type": "provider.switched", "session_id": "s", "seq": 5, "from": "a", "to": "b",
                      "reason": "r"})
    assert isinstance(sw, ProviderSwitched) and sw.from_ == "a"
    unknown = parse_event({"type": "something.new", "session_id": "s", "seq": 6})
    assert type(unknown).__name__ == "Event" and unknown.seq == 6


def test_start_to_proto() -> None:
    pb, _ = grpc_gen.load()
    msg = start_to_proto(pb, StartSession.model_validate({"language": "en", "vad": {"silence_ms": 300},
                                                          "audio": {"encoding": "flac"}}))
    assert msg.language == "en" and msg.vad.silence_ms == 300 and msg.audio.encoding == "flac"
    assert not msg.HasField("provider") and not msg.HasField("interim_results")  # unset stays unset


def test_start_to_proto_names_what_grpc_cannot_carry() -> None:
    pb, _ = grpc_gen.load()

    class Newer(StartSession):
        model_config = {"extra": "allow"}

    with pytest.raises(HubRequestError) as exc:
        start_to_proto(pb, Newer.model_validate({"no_such_option": 1}))
    assert exc.value.code == "invalid_command" and "no_such_option" in exc.value.message


def test_client_imports_the_vocabulary_only() -> None:
    code = ("import sys, asrhub.client; mods = [m for m in sys.modules if m.startswith('asrhub.')];"
            "print('\\n'.join(mods))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    allowed = ("asrhub.client", "asrhub.core.events", "asrhub.core.commands", "asrhub.core.audio",
               "asrhub.core.errors", "asrhub.core.tokens", "asrhub.core")
    assert out and all(m.startswith(allowed) for m in out), out


def test_http_error_reads_the_hub_error_body_or_names_the_status() -> None:
    from asrhub.client.sse import http_error

    e = http_error(404, b'{"error": {"code": "session_not_found", "message": "no session \'x\'"}}')
    assert (e.code, e.message, e.status) == ("session_not_found", "no session 'x'", 404)
    proxy = http_error(502, b"<html>Bad Gateway</html>" + b"x" * 500)  # a balancer's page, not the hub
    assert proxy.code == "http_502" and proxy.message.startswith("<html>Bad Gateway") and len(proxy.message) == 200
    assert http_error(400, b'{"detail": "not ours"}').code == "http_400"
    assert http_error(400, b'{"error": "flat"}').code == "http_400"


def test_resume_failed_keeps_the_hubs_code_or_says_connection_lost() -> None:
    from asrhub.client.errors import ConnectionLost, ResumeFailed

    refused = ResumeFailed("cannot resume", HubRequestError("session_not_found", "gone", 404))
    assert refused.code == "session_not_found" and isinstance(refused.cause, HubRequestError)
    assert isinstance(refused, HubRequestError)  # one except clause catches every refusal
    lost = ResumeFailed("5 reconnects failed", ConnectionLost("reset"))
    assert lost.code == "connection_lost" and str(lost) == "connection_lost: 5 reconnects failed"


def test_client_dependency_imports_or_names_the_extra() -> None:
    import json

    from asrhub.client.errors import CLIENT_EXTRA, MissingClientDependency, client_dependency

    assert client_dependency("json", "a test") is json
    with pytest.raises(MissingClientDependency) as exc:
        client_dependency("asrhub_no_such_package", "the XYZ client")
    assert isinstance(exc.value, ImportError) and exc.value.name == "asrhub_no_such_package"
    assert "the XYZ client needs the 'asrhub_no_such_package' package" in str(exc.value)
    assert CLIENT_EXTRA in str(exc.value)


def test_parse_event_refuses_a_known_event_without_its_fields() -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="text"):
        parse_event({"type": "transcript.final", "session_id": "s", "seq": 1, "utterance_id": "u",
                     "start_ms": 0, "end_ms": 10, "provider": "p", "latency_ms": 5})
