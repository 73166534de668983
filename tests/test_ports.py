"""Issue 24 item 5: a taken gRPC port stops `asrhub serve` with one clear line, as a taken HTTP port does
(grpc's default SO_REUSEPORT let a second hub share the port and take half of the first one's calls)."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import grpc
import pytest

from asrhub.api.grpc import GrpcServer
from asrhub.core.config import load_config
from asrhub.core.errors import HubError
from asrhub.hub import Hub
from asrhub.wire import grpc_gen
from tests.support import REPO, HubProcess, base_config, free_port, running


@pytest.fixture(scope="module")
def first(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HubProcess]:
    yield from running(base_config(), tmp_path_factory.mktemp("first"))


async def served_by(grpc_port: int, calls: int) -> int:
    """How many of `calls` ListProviders calls on the port were answered (each on a new connection)."""
    pb, pb_grpc = grpc_gen.load()
    answered = 0
    for _ in range(calls):
        async with grpc.aio.insecure_channel(f"127.0.0.1:{grpc_port}") as ch:
            res = await pb_grpc.AsrHubStub(ch).ListProviders(pb.ListProvidersRequest(), timeout=10)
            answered += bool(res.providers)
    return answered


def test_second_hub_on_a_taken_grpc_port_exits_with_one_line(first: HubProcess, tmp_path: Path) -> None:
    cfg = tmp_path / "second.yaml"
    cfg.write_text(base_config())
    second = subprocess.run([sys.executable, "-m", "asrhub.cli", "serve", "--config", str(cfg),
                             "--port", str(free_port()), "--grpc-port", str(first.grpc_port)],
                            capture_output=True, text=True, timeout=120, cwd=REPO)
    assert second.returncode != 0, second.stderr[-2000:]
    lines = second.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in second.stderr, second.stderr[-2000:]
    assert f"gRPC port 127.0.0.1:{first.grpc_port} is in use" in lines[0], lines
    assert "--grpc-port" in lines[0]  # names the fix
    assert first.alive()
    assert asyncio.run(served_by(first.grpc_port, 10)) == 10


@pytest.fixture
async def shared_listener() -> AsyncIterator[int]:
    """A grpc server with grpc's own defaults (SO_REUSEPORT on), as the hub's was: it lets others in."""
    server = grpc.aio.server()
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    yield port
    await server.stop(None)


async def test_grpc_server_refuses_a_port_another_server_shares(shared_listener: int) -> None:
    """GrpcServer itself (the lifespan's start, after serve's own check) does not join a port held with
    SO_REUSEPORT: HubError naming the port."""
    config = load_config(None, env={})
    config.server.host, config.server.grpc_port = "127.0.0.1", shared_listener
    with pytest.raises(HubError, match=f"gRPC port 127.0.0.1:{shared_listener} is in use"):
        await GrpcServer(Hub(config)).start()
    # under another ASGI server's workers (the app factory) the port is shared on purpose
    shared = GrpcServer(Hub(config), shared_port=True)
    assert await shared.start() == shared_listener
    await shared.stop(None)


def test_second_hub_on_a_taken_http_port_exits_with_one_line(first: HubProcess, tmp_path: Path) -> None:
    """The HTTP port too: refused before any model loads, one line naming --port (uvicorn's own ERROR came
    only after both models had loaded)."""
    cfg = tmp_path / "second.yaml"
    cfg.write_text(base_config())
    second = subprocess.run([sys.executable, "-m", "asrhub.cli", "serve", "--config", str(cfg),
                             "--port", str(first.port), "--grpc-port", str(free_port())],
                            capture_output=True, text=True, timeout=120, cwd=REPO)
    assert second.returncode == 2, second.stderr[-2000:]
    lines = second.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in second.stderr, second.stderr[-2000:]
    assert f"HTTP port 127.0.0.1:{first.port} is in use" in lines[0] and "--port" in lines[0], lines
    assert first.alive()


def test_ctrl_c_stops_serve_without_a_traceback(tmp_path: Path) -> None:
    """Ctrl-C (SIGINT) drains and stops `asrhub serve` with the shell's 130 and no traceback (uvicorn re-raises
    the signal once it has shut down)."""
    hub = HubProcess(base_config(), tmp_path).start()
    hub.stop(signal.SIGINT)
    assert hub.proc is not None and hub.proc.returncode == 130, hub.log.read_text()[-2000:]
    log = hub.log.read_text()
    assert "Traceback" not in log and "KeyboardInterrupt" not in log, log[-2000:]
