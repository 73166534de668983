"""Issue 14: serving beyond `asrhub serve` — the public app factory under plain `uvicorn --factory`, and
TLS (`server.tls`) on both the HTTP/WebSocket port and the gRPC port, with a certificate made here."""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import os
import signal
import ssl
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import grpc
import httpx
import pytest

from tests.support import (
    HubProcess,
    base_config,
    clip,
    final_text,
    free_ports,
    load_pcm16,
    until_changed,
    wer,
    ws_stream,
)

CLIP = clip("en_libri_1089-134691")


def _self_signed(folder: Path) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                        x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


async def _grpc_recognize(channel: grpc.aio.Channel) -> str:
    from asrhub.wire import grpc_gen
    pb, pb_grpc = grpc_gen.load()
    res = await pb_grpc.AsrHubStub(channel).Recognize(pb.RecognizeRequest(audio=CLIP.path.read_bytes()), timeout=60)
    return str(res.text)


# -- uvicorn --factory -----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def factory_hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[subprocess.Popen[bytes], int, int, Path]]:
    tmp = tmp_path_factory.mktemp("factory")
    cfg = tmp / "hub.yaml"
    cfg.write_text(base_config())
    port, grpc_port = free_ports(2)
    log = tmp / "uvicorn.log"
    env = {**os.environ, "ASRHUB_CONFIG": str(cfg), "ASRHUB_SERVER__GRPC_PORT": str(grpc_port)}
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "uvicorn", "--factory", "asrhub.api.app:create_app",
                                 "--host", "127.0.0.1", "--port", str(port)], stdout=out, stderr=subprocess.STDOUT,
                                env=env)

    def ready() -> bool:  # asked after each line uvicorn logs (not those of this check's own requests)
        assert proc.poll() is None, log.read_text()[-3000:]
        try:
            return httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=5).status_code == 200
        except httpx.HTTPError:
            return False

    until_changed(log, ready, timeout=120, what="the factory app ready", proc=proc, own=("GET /readyz",))
    yield proc, port, grpc_port, log
    if proc.poll() is None:
        proc.kill()
        proc.wait()


def test_uvicorn_factory_serves_websocket_grpc_and_the_demo(
        factory_hub: tuple[subprocess.Popen[bytes], int, int, Path]) -> None:
    proc, port, grpc_port, log = factory_hub
    assert 'id="mic-toggle"' in httpx.get(f"http://127.0.0.1:{port}/", timeout=10).text
    pcm = load_pcm16(CLIP.path).tobytes()

    async def both() -> tuple[str, str]:
        events = await ws_stream(f"ws://127.0.0.1:{port}/v1/ws", pcm, realtime=0)
        async with grpc.aio.insecure_channel(f"127.0.0.1:{grpc_port}") as ch:
            return final_text(events), await _grpc_recognize(ch)

    ws_text, grpc_text = asyncio.run(both())
    assert wer([CLIP.transcript], [ws_text]) < 0.2, ws_text
    assert wer([CLIP.transcript], [grpc_text]) < 0.2, grpc_text
    proc.send_signal(signal.SIGTERM)  # uvicorn's own shutdown runs the app's lifespan: the hub stops cleanly
    assert proc.wait(30) in (0, -signal.SIGTERM), log.read_text()[-3000:]  # uvicorn re-raises the signal
    assert "Application shutdown complete" in log.read_text()


# -- TLS -------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tls_hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[HubProcess, Path]]:
    tmp = tmp_path_factory.mktemp("tls")
    cert, key = _self_signed(tmp)
    h = HubProcess(base_config(tls=f"server:\n  tls:\n    cert: {cert}\n    key: {key}\n"), tmp)
    h.scheme, h.verify = "https", ssl.create_default_context(cafile=str(cert))
    h.start()
    yield h, cert
    h.stop()


def test_tls_on_http_websocket_and_grpc(tls_hub: tuple[HubProcess, Path]) -> None:
    hub, cert = tls_hub
    assert httpx.get(hub.http + "/readyz", verify=hub.verify, timeout=10).status_code == 200
    with pytest.raises(httpx.HTTPError):  # plain HTTP is not served on the TLS port
        httpx.get(f"http://127.0.0.1:{hub.port}/readyz", timeout=5)
    with pytest.raises(httpx.ConnectError):  # and an untrusted certificate is refused by the client
        httpx.get(hub.http + "/readyz", timeout=5)
    pcm = load_pcm16(CLIP.path).tobytes()
    ctx = ssl.create_default_context(cafile=str(cert))

    async def both() -> tuple[str, str]:
        events = await ws_stream(hub.ws, pcm, realtime=0, ssl_context=ctx)
        creds = grpc.ssl_channel_credentials(root_certificates=cert.read_bytes())
        async with grpc.aio.secure_channel(f"127.0.0.1:{hub.grpc_port}", creds) as ch:
            return final_text(events), await _grpc_recognize(ch)

    ws_text, grpc_text = asyncio.run(both())
    assert wer([CLIP.transcript], [ws_text]) < 0.2, ws_text
    assert wer([CLIP.transcript], [grpc_text]) < 0.2, grpc_text

    async def plaintext_grpc() -> None:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{hub.grpc_port}") as ch:
            await _grpc_recognize(ch)

    with pytest.raises(grpc.aio.AioRpcError):  # the gRPC port speaks TLS only
        asyncio.run(plaintext_grpc())
