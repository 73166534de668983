"""deploy/nginx.conf, run for real: the shipped file, rendered by deploy/render_nginx.py for loopback
ports, in front of two real `asrhub serve` nodes sharing a real redis-server. Real speech goes through
nginx on every streaming wire (WebSocket, SSE, Socket.IO long-polling, gRPC via grpc_pass); nginx's own
access log (`$upstream_addr`) shows where each request went.

Also checks deploy/docker-compose.cluster.yml against the config (no docker here: the YAML is parsed
and every name it uses is checked)."""

from __future__ import annotations

import asyncio
import json
import os
import pwd
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import httpx
import pytest
import yaml

from tests.cluster.nodes import START, Cluster, WsClient, assert_gapless, speech
from tests.contract.clients import PCM16, SseClient
from tests.contract.grpc_client import GrpcClient
from tests.support import (
    REPO,
    FileWatch,
    HubProcess,
    clip,
    final_text,
    free_ports,
    load_pcm16,
    until,
    until_changed,
    wer,
    ws_stream,
)

DEPLOY = REPO / "deploy"
NGINX = shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if Path(p).exists()),
                                      None)
#: short clips (a few seconds), streamed at twice real time
WS_CLIP, SSE_CLIP, SIO_CLIP, GRPC_CLIP = ("en_libri_1089-134691-0001", "en_libri_1221-135766-0002",
                                          "en_ljspeech_LJ001-0005", "en_libri_1089-134691-0001")
MAX_WER = 0.2  # one clip each; the accuracy of the hub itself is test_accuracy's subject


class Node(Protocol):
    """What nginx needs of a hub node: its ports on 127.0.0.1."""

    @property
    def port(self) -> int: ...

    @property
    def grpc_port(self) -> int: ...


@dataclass(frozen=True)
class LogLine:
    method: str
    uri: str
    status: int
    upstream: str  # "-" when nginx answered itself; "a, b" when it tried more than one node
    rid: str
    key: str


_LOG = re.compile(r"\] (?P<method>\S+) (?P<uri>\S+) (?P<status>\d+) \d+ upstream=(?P<upstream>.*?) "
                  r"rt=\S+ rid=(?P<rid>\S+) key=(?P<key>\S+)$")


class Nginx:
    """nginx running deploy/nginx.conf, rendered for `hubs` on free loopback ports, everything of it in `dir`."""

    def __init__(self, dir: Path, hubs: Sequence[Node]) -> None:
        assert NGINX is not None
        self.dir = dir
        self.dir.mkdir(parents=True, exist_ok=True)
        self.hubs = hubs
        self.port, self.grpc_port = free_ports(2)
        self.conf = dir / "nginx.conf"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws(self) -> str:
        return f"ws://127.0.0.1:{self.port}/v1/ws"

    def render(self) -> None:
        subprocess.run([sys.executable, str(DEPLOY / "render_nginx.py"),
                        *(f"--hub=127.0.0.1:{h.port}:{h.grpc_port}" for h in self.hubs),
                        "--listen", f"127.0.0.1:{self.port}", "--grpc-listen", f"127.0.0.1:{self.grpc_port}",
                        "--local", str(self.dir), "-o", str(self.conf)], check=True)

    def start(self, timeout: float = 20.0, ready: int = 200) -> Nginx:
        """Started once GET /healthz through it answers `ready` (200: a node answers)."""
        assert NGINX is not None
        self.render()
        main = "daemon off;"
        if os.geteuid() == 0:  # workers as this user (not nobody), so they can use the temp dirs in tmp
            main += f" user {pwd.getpwuid(os.geteuid()).pw_name};"
        with open(self.dir / "stderr.log", "ab") as out:
            self.proc = subprocess.Popen([NGINX, "-p", str(self.dir), "-e", str(self.dir / "error.log"),
                                         "-c", str(self.conf), "-g", main], stdout=out, stderr=subprocess.STDOUT)
        proc = self.proc
        logs = (self.dir / "error.log", self.dir / "access.log")

        def answers() -> bool:
            """Asked once nginx logs that it started its workers (it listens then), and again after each
            line it logs that is not of these requests."""
            if proc.poll() is not None:
                raise RuntimeError(f"nginx exited with {proc.returncode}:\n{self.errors()}")
            if not logs[0].exists() or "start worker process" not in logs[0].read_text():
                return False
            try:
                return httpx.get(self.http + "/healthz", timeout=2).status_code == ready
            except httpx.HTTPError:
                return False

        try:
            until_changed(logs, answers, timeout=timeout, what="nginx answering", proc=proc, own=("GET /healthz",))
            return self
        except AssertionError:
            pass
        self.stop()
        raise RuntimeError(f"nginx not answering in {timeout} s:\n{self.errors()}")

    def errors(self) -> str:
        return "".join(p.read_text()[-3000:] for p in (self.dir / "stderr.log", self.dir / "error.log") if p.exists())

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)  # fast shutdown: open streams are cut
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def access_log(self) -> list[LogLine]:
        path = self.dir / "access.log"
        if not path.exists():
            return []
        lines = []
        for raw in path.read_text().splitlines():
            m = _LOG.search(raw)
            assert m is not None, f"access log line not in the asrhub format: {raw!r}"
            lines.append(LogLine(m["method"], m["uri"], int(m["status"]), m["upstream"], m["rid"], m["key"]))
        return lines

    async def wait_log(self, pred: Callable[[LogLine], bool], count: int = 1, wait_s: float = 10.0) -> list[LogLine]:
        """The access log's lines matching pred, once there are `count` (nginx writes a line when its
        request is done, which may be just after the client saw the end of the answer)."""
        def enough() -> list[LogLine] | None:
            found = [x for x in self.access_log() if pred(x)]
            return found if len(found) >= count else None

        try:  # checked after each line nginx writes to it
            return await until(enough, FileWatch(self.dir / "access.log"), timeout=wait_s, what="access log lines")
        except AssertionError:
            return [x for x in self.access_log() if pred(x)]


@dataclass
class Deployment:
    nodes: Cluster  # redis-server and the hub nodes
    front: Nginx

    @property
    def hubs(self) -> list[HubProcess]:
        return self.nodes.nodes

    def http_upstreams(self) -> set[str]:
        return {f"127.0.0.1:{h.port}" for h in self.hubs}

    def grpc_upstreams(self) -> set[str]:
        return {f"127.0.0.1:{h.grpc_port}" for h in self.hubs}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    """redis-server, two hub nodes on it and nginx in front of them, for the whole module."""
    if NGINX is None:
        pytest.fail("no nginx binary (scripts/bootstrap-test.sh installs Debian's nginx)")
    tmp = tmp_path_factory.mktemp("nginx-cluster")
    # the default lease; a short drain: the Socket.IO test leaves a long-poll the node only gives up at
    # the drain's end
    nodes = Cluster(tmp, 2, lease_ms=3000, env={"ASRHUB_SERVER__SHUTDOWN_GRACE_S": "2"})
    front: Nginx | None = None
    try:
        front = Nginx(tmp / "nginx", nodes.nodes).start()
        yield Deployment(nodes, front)
    finally:
        if front is not None:
            front.stop()
        nodes.stop()


def _pcm(name: str) -> tuple[bytes, str]:
    c = clip(name)
    return load_pcm16(c.path).tobytes(), c.transcript


def _check_session(events: list[dict[str, Any]], transcript: str) -> None:
    types = [e["type"] for e in events]
    assert types[0] == "session.started", types
    assert types[-1] == "session.ended" and events[-1]["reason"] == "stop", types
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert wer([transcript], [final_text(events)]) <= MAX_WER, final_text(events)


async def test_websocket_session_through_nginx(cluster: Deployment) -> None:
    front = cluster.front
    earlier = sum(x.uri == "/v1/ws" for x in front.access_log())
    pcm, transcript = _pcm(WS_CLIP)
    events = await ws_stream(front.ws, pcm, realtime=2.0, timeout=60)
    _check_session(events, transcript)
    lines = (await front.wait_log(lambda x: x.uri == "/v1/ws", count=earlier + 1))[earlier:]
    assert [x.status for x in lines] == [101]  # upgraded by nginx (Upgrade/Connection passed on)
    assert lines[0].upstream in cluster.http_upstreams()


async def test_websocket_resume_on_the_other_node_through_nginx(cluster: Deployment) -> None:
    """No stickiness for WebSocket: a client that lost its connection resumes through nginx on the other
    node (the connection is opened while the first is still live, so least_conn must pick the other
    node) and gets exactly the events after the last one it holds."""
    import websockets

    front = cluster.front
    earlier = sum(x.uri == "/v1/ws" for x in front.access_log())
    first, second = clip(WS_CLIP), clip(SSE_CLIP)
    c = WsClient()
    await c.connect(front)  # WsClient.connect takes anything with a `ws` URL
    await c.send_audio(speech(WS_CLIP))
    await c.recv_until(lambda e: e["type"] == "transcript.final")
    spare = await websockets.connect(front.ws, max_size=None)
    try:
        k = c.last_seq
        await c.drop()
        c.ws = spare
        await spare.send(json.dumps({**START, "resume": {"session_id": c.session_id, "last_seq": k}}))
        await c.send_audio(speech(SSE_CLIP))
        await c.stop()
        await c.rest()
    finally:
        await spare.close()

    assert_gapless(c.events)
    assert c.events[k]["seq"] == k + 1
    assert c.events[-1]["type"] == "session.ended" and c.events[-1]["reason"] == "stop"
    assert wer([f"{first.transcript} {second.transcript}"], [final_text(c.events)]) <= MAX_WER, final_text(c.events)
    lines = (await front.wait_log(lambda x: x.uri == "/v1/ws", count=earlier + 2))[earlier:]
    owner = f"127.0.0.1:{cluster.hubs[int(cluster.nodes.owner(c.session_id).removeprefix('node'))].port}"
    other = (cluster.http_upstreams() - {owner}).pop()
    assert [x.upstream for x in lines] == [owner, other], lines  # created on the owner, resumed on the other


async def test_sse_events_are_not_buffered(cluster: Deployment) -> None:
    """The first transcript event reaches the client through nginx while the session is still open (no
    stop sent): nginx does not hold the event stream back. least_conn spreads the session's requests over
    both nodes (the events read on one, the audio posted to the other), which the cluster bridges."""
    front = cluster.front
    pcm, transcript = _pcm(SSE_CLIP)
    c = SseClient(front)
    try:
        sid = await c.start({"audio": PCM16})
        assert sid is not None, await c.next_error()
        assert c.audio_url == f"{front.http}/v1/sessions/{sid}/audio"  # built from the Host nginx passes on
        await c.stream(pcm, realtime=2.0)
        first = await c.wait_for(lambda e: e["type"] in ("transcript.partial", "transcript.final"), wait_s=30)
        assert c.events[-1]["type"] != "session.ended"  # no stop sent yet: the stream is open
        lag = c.arrivals[c.events.index(first)] - first["ts"]
        assert lag < 2.0, f"{first['type']} made {lag:.2f} s before it arrived"
        await c.stop()
        events = await c.wait_ended(60)
    finally:
        await c.close()
    _check_session(events, transcript)
    prefix = f"/v1/sessions/{sid}/"
    streams = await front.wait_log(lambda x: x.uri == prefix + "events")
    assert [x.status for x in streams] == [200]
    lines = [x for x in front.access_log() if x.uri.startswith(prefix)]
    assert {x.upstream for x in lines} == cluster.http_upstreams(), lines


@pytest.mark.parametrize("transports", [["polling"], ["polling", "websocket"]], ids=["polling", "upgrade"])
async def test_socketio_is_pinned_to_one_node(cluster: Deployment, transports: list[str]) -> None:
    """Socket.IO with the polling transport only: every request of the client (handshake, namespace,
    each POST of audio, each long-poll GET) reaches one node, by the sticky cookie nginx sets on the first
    answer; the whole session works. With the upgrade (a browser's default), the WebSocket that takes over
    the polling connection reaches the same node too."""
    import aiohttp
    import socketio

    front = cluster.front
    before = len(front.access_log())
    pcm, transcript = _pcm(SIO_CLIP)
    events: list[dict[str, Any]] = []
    ended = asyncio.Event()

    async def on_any(event: str, data: Any = None) -> None:
        events.append(data)
        if event == "session.ended":
            ended.set()

    # a browser keeps a cookie set by 127.0.0.1; aiohttp's default jar refuses cookies of IP hosts
    http = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
    sio = socketio.AsyncClient(reconnection=False, http_session=http)
    sio.on("*", on_any, namespace="/asr")
    try:
        await sio.connect(front.http, namespaces=["/asr"], transports=transports, wait_timeout=10)
        assert sio.transport() == transports[-1]
        ack = await sio.call("start", {"audio": PCM16}, namespace="/asr", timeout=30)
        assert isinstance(ack, dict) and ack.get("session_id"), ack
        t0 = time.perf_counter()
        step = 3200  # 100 ms
        for i in range(0, len(pcm), step):
            await sio.emit("audio", pcm[i:i + step], namespace="/asr")
            delay = t0 + (i + step) / 32000 / 2.0 - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
        await sio.emit("stop", namespace="/asr")
        await asyncio.wait_for(ended.wait(), 60)
    finally:
        # abort: python-engineio's server does not answer the pending long-poll when the client closes,
        # so a waiting disconnect would sit out the poll's 30 s timeout (with or without nginx)
        await sio.eio.disconnect(abort=True)
        await http.close()
    _check_session(events, transcript)

    def mine(x: LogLine) -> bool:
        return x.uri.startswith("/socket.io/")

    if "websocket" in transports:
        await front.wait_log(lambda x: mine(x) and x.status == 101)
    log = front.access_log()
    # an earlier client's long-poll, cut when it closed, may be logged after `before`: not this client's
    earlier = {x.key for x in log[:before] if mine(x)}
    lines = [x for x in log[before:] if mine(x) and x.key not in earlier]
    methods = [x.method for x in lines]
    if "websocket" in transports:
        assert [x.status for x in lines].count(101) == 1 and methods.count("GET") >= 2, lines
    else:
        assert methods.count("POST") >= 3 and methods.count("GET") >= 3, lines
    first = lines[0]
    assert first.rid == first.key, first  # the handshake was hashed on the id it was given as its cookie
    assert {x.key for x in lines} == {first.key}, lines
    assert {x.upstream for x in lines} == {first.upstream}, lines
    assert first.upstream in cluster.http_upstreams()
    # every request answered by the node; only the long-poll pending at the close may be cut (499)
    assert all(x.status in (200, 101) for x in lines if x is not lines[-1]), lines
    assert lines[-1].status in (200, 101, 499), lines


async def test_grpc_session_through_grpc_pass(cluster: Deployment) -> None:
    pcm, transcript = _pcm(GRPC_CLIP)
    c = GrpcClient(cluster.front)  # the official grpcio client, on nginx's HTTP/2 listener
    await c.connect()
    try:
        sid = await c.start({"audio": PCM16})
        assert sid is not None, await c.next_error()
        await c.stream(pcm, realtime=2.0)
        await c.stop()
        events = await c.wait_ended(60)
    finally:
        await c.close()
    _check_session(events, transcript)
    lines = await cluster.front.wait_log(lambda x: x.uri == "/asrhub.v1.AsrHub/StreamingRecognize")
    assert lines and lines[-1].status == 200 and lines[-1].upstream in cluster.grpc_upstreams(), lines


async def test_client_address_reaches_the_node(cluster: Deployment) -> None:
    """nginx sets X-Forwarded-For (appending to the client's own); the node, trusting its loopback peer,
    logs the address the header names (port 0) rather than nginx's connection (a real port)."""
    stamp = time.time_ns()
    probes = {f"plain-{stamp}": ({}, "127.0.0.1:0"),
              f"forwarded-{stamp}": ({"X-Forwarded-For": "203.0.113.7"}, "203.0.113.7:0")}
    async with httpx.AsyncClient(base_url=cluster.front.http, timeout=30) as http:
        for probe, (headers, _) in probes.items():
            assert (await http.get(f"/healthz?probe={probe}", headers=headers)).status_code == 200
    for probe, (_, client) in probes.items():
        def logged(line: str = f'{client} - "GET /healthz?probe={probe}') -> bool:
            return any(line in h.log.read_text() for h in cluster.hubs)

        await until(logged, FileWatch(*(h.log for h in cluster.hubs)), timeout=10,
                    what=f"a node logging {probe} as coming from {client}")


async def test_body_and_header_limits(cluster: Deployment) -> None:
    """A body a little over limits.max_message_bytes still reaches a node (which answers in its own words);
    one over the proxy's client_max_body_size, or a header line over its buffers, is refused by nginx, in
    the hub's error shape."""
    front = cluster.front
    # a connection per request: after a response that came before the whole body was read, nginx closes
    # the connection, and a client reusing it races that close ("Server disconnected", seen once in CI)
    async with httpx.AsyncClient(base_url=front.http, timeout=30,
                                 limits=httpx.Limits(max_keepalive_connections=0)) as http:
        octets = {"content-type": "application/octet-stream"}
        passed = await http.post("/v1/sessions/no-such-session/audio", content=bytes(1_200_000), headers=octets)
        assert passed.status_code == 404 and passed.json()["error"]["code"] == "session_not_found", passed.text
        refused = await http.post("/v1/sessions/no-such-session/audio", content=bytes(3 << 20), headers=octets)
        assert refused.status_code == 413, refused.text
        assert refused.json() == {"error": {"code": "payload_too_large",
                                            "message": "request body over the proxy's client_max_body_size"}}
        heads = await http.get("/healthz", headers={"x-padding": "a" * 9000})  # one line over 8 KiB
        assert heads.status_code == 431 and heads.json()["error"]["code"] == "headers_too_large", heads.text
    lines = await front.wait_log(lambda x: x.uri == "/v1/sessions/no-such-session/audio", count=2)
    assert [x.status for x in lines[-2:]] == [404, 413]
    assert lines[-2].upstream in cluster.http_upstreams() and lines[-1].upstream == "-"


async def test_a_dead_node_is_passed_over(cluster: Deployment) -> None:
    """One node killed (-9): new sessions through nginx still work on every wire. A refused connection is
    retried on the next node (POST included: nothing was sent), then the dead node is left out for
    fail_timeout. The node is started again afterwards."""
    front = cluster.front
    live, dead = cluster.hubs
    before = len(front.access_log())
    dead.stop(signal.SIGKILL)
    try:
        pcm, transcript = _pcm(GRPC_CLIP)
        for _ in range(2):  # two new sessions in a row: least_conn offers the dead node one of them
            _check_session(await ws_stream(front.ws, pcm, realtime=0, timeout=60), transcript)
        async with httpx.AsyncClient(base_url=front.http, timeout=30) as http:
            for _ in range(2):
                r = await http.post("/v1/sessions", json={"audio": PCM16})
                assert r.status_code == 201, r.text
                assert (await http.delete(f"/v1/sessions/{r.json()['session_id']}")).status_code == 204
        c = GrpcClient(front)
        await c.connect()
        try:
            assert await c.start({"audio": PCM16}) is not None, await c.next_error()
            await c.stream(pcm, realtime=0)
            await c.stop()
            _check_session(await c.wait_ended(60), transcript)
        finally:
            await c.close()
    finally:
        await asyncio.to_thread(dead.start)
    lines = [x for x in front.access_log()[before:] if x.uri != "/healthz"]
    tried = [x.upstream.split(", ") for x in lines]
    assert all(t[-1] in (f"127.0.0.1:{live.port}", f"127.0.0.1:{live.grpc_port}") for t in tried), lines
    assert any(len(t) == 2 for t in tried), lines  # the dead node was offered a request, which went on
    assert all(x.status in (101, 200, 201, 204) for x in lines), lines


@dataclass(frozen=True)
class _Nowhere:
    """A node address nothing listens on."""

    port: int
    grpc_port: int


def test_no_node_answering(tmp_path: Path) -> None:
    """Every node down: nginx's own 502 in the hub's error shape (not an HTML page)."""
    if NGINX is None:
        pytest.fail("no nginx binary (scripts/bootstrap-test.sh installs Debian's nginx)")
    front = Nginx(tmp_path / "nginx", [_Nowhere(*free_ports(2))]).start(ready=502)
    try:
        r = httpx.post(front.http + "/v1/sessions", json={"audio": PCM16}, timeout=10)
    finally:
        front.stop()
    assert r.status_code == 502 and r.headers["content-type"] == "application/json"
    assert r.json() == {"error": {"code": "internal", "message": "no hub node answered"}}


# ---------------------------------------------------------------------------------------------------
def _render(*args: str) -> str:
    return subprocess.run([sys.executable, str(DEPLOY / "render_nginx.py"), *args], check=True,
                          capture_output=True, text=True).stdout


def test_compose_cluster_matches_the_nginx_config() -> None:
    """docker-compose.cluster.yml parses; every service, volume and file it names exists; its hubs are the
    nodes the shipped nginx.conf lists (rendering the file for them changes nothing)."""
    compose = yaml.safe_load((DEPLOY / "docker-compose.cluster.yml").read_text())
    services = compose["services"]
    assert {"redis", "hub1", "hub2", "nginx"} <= set(services)
    volumes = set(compose.get("volumes") or {})
    for name, svc in services.items():
        deps = svc.get("depends_on") or []
        assert set(deps) <= set(services), (name, deps)
        for vol in svc.get("volumes") or []:
            source = vol.split(":")[0]
            if source.startswith((".", "/")):
                assert (DEPLOY / source).exists(), (name, source)
            else:
                assert source in volumes, (name, source)
        if "build" in svc:
            assert (DEPLOY / svc["build"]["context"] / svc["build"]["dockerfile"]).is_file(), name
    hubs = [n for n in services if n.startswith("hub")]
    own = ("ASRHUB_CLUSTER__NODE_ID", "ASRHUB_CLUSTER__ADVERTISE_URL")
    shared = [{k: v for k, v in services[n]["environment"].items() if k not in own} for n in hubs]
    assert all(env == shared[0] for env in shared), "the nodes differ in more than their names"
    assert shared[0]["ASRHUB_CLUSTER__REDIS_URL"].startswith("redis://redis:")
    assert "ASRHUB_SERVER__AUTH__TOKEN_SECRET" in shared[0]  # tokens of one node valid on all
    for n in hubs:
        env = services[n]["environment"]
        assert env["ASRHUB_CLUSTER__NODE_ID"] == n and env["ASRHUB_CLUSTER__ADVERTISE_URL"] == f"http://{n}:8000"
    assert set(services["nginx"]["ports"]) == {"8000:8000", "50051:50051"}
    assert "./nginx.conf:/etc/nginx/nginx.conf:ro" in services["nginx"]["volumes"]
    shipped = (DEPLOY / "nginx.conf").read_text()
    assert _render(*(f"--hub={n}:8000:50051" for n in hubs), "--listen=8000", "--grpc-listen=50051") == shipped
