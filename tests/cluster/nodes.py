"""A real cluster on loopback: one redis-server and N `asrhub serve` processes, each its own node
(`ASRHUB_CLUSTER__REDIS_URL`, `ASRHUB_CLUSTER__NODE_ID`), started in parallel, stopped afterwards."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from asrhub.client import AudioSpec, Event
from tests.cluster.redis_server import RedisServer
from tests.cluster.sentinel import Sentinels
from tests.support import HubProcess, base_config, clip, load_pcm16

FIRST, SECOND = "en_libri_1221", "en_libri_1089-134691"  # two English clips, in this order
LEASE_MS = 1500  # a short lease keeps the owner-death tests quick (the default is 3000)


class Cluster:
    def __init__(self, tmp: Path, nodes: int, *, extra_config: str = "", lease_ms: int = LEASE_MS,
                 env: dict[str, str] | None = None, bridge_block_ms: int | None = 250,
                 command: Callable[[int], list[str] | None] | None = None,
                 redis: RedisServer | Sentinels | None = None, redis_urls: dict[int, str] | None = None) -> None:
        """`bridge_block_ms=None`: the configured default. `command(i)`: node i's program (HubProcess's
        `command`, e.g. under `taskset`); None or returning None: this interpreter's `-m asrhub.cli`.
        `redis`: the Redis the nodes share (e.g. behind Sentinel; stopped with the cluster); default a
        redis-server of its own. `redis_urls`: node i reaches that Redis at another URL (e.g. through
        tests/cluster/redis_gate.py)."""
        self.redis = redis if redis is not None else RedisServer(tmp).start()
        self.lease_ms = lease_ms
        block = "" if bridge_block_ms is None else f"  bridge_block_ms: {bridge_block_ms}\n"
        config = base_config(cluster=f"cluster:\n  lease_ms: {lease_ms}\n{block}", extra=extra_config)
        urls = redis_urls or {}
        self.nodes = [HubProcess(config, tmp, env={"ASRHUB_CLUSTER__REDIS_URL": urls.get(i, self.redis.url),
                                                   "ASRHUB_CLUSTER__NODE_ID": f"node{i}", **(env or {})},
                                 command=command(i) if command else None)
                      for i in range(nodes)]
        with ThreadPoolExecutor(len(self.nodes)) as pool:
            list(pool.map(lambda n: n.start(), self.nodes))

    def node_id(self, i: int) -> str:
        return f"node{i}"

    def stop(self) -> None:
        for n in self.nodes:
            if n.proc is not None and n.proc.poll() is None:  # a node left frozen (SIGSTOP) by a failed test
                os.kill(n.proc.pid, signal.SIGCONT)
            n.stop()
        self.redis.stop()

    def log(self, session_id: str) -> list[dict[str, Any]]:
        """The session's event log in Redis, oldest first."""
        return [json.loads(f[b"event"]) for _, f in self.redis.client().xrange(f"ev:{session_id}")]

    def owner(self, session_id: str) -> str:
        v = self.redis.client().hget(f"sess:{session_id}", "owner")
        return v.decode() if v else ""


def speech(*names: str, gap_s: float = 1.0) -> bytes:
    """Clips one after another with `gap_s` of silence after each: 16 kHz pcm_s16le."""
    parts: list[np.ndarray] = []
    for name in names:
        parts += [load_pcm16(clip(name).path), np.zeros(int(16000 * gap_s), dtype=np.int16)]
    return np.concatenate(parts).astype(np.int16).tobytes()


START = {"type": "start", "audio": {"encoding": "pcm_s16le", "sample_rate": 16000, "channels": 1}}
CHUNK = 3200  # 100 ms
PCM = AudioSpec(encoding="pcm_s16le", sample_rate=16000, channels=1)  # asrhub.client's form of START's audio


class Reader:
    """The application's side of an asrhub.client session: every event, once each, with when it arrived
    (`time.monotonic()`)."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self.at: list[float] = []
        self._new = asyncio.Event()

    async def run(self, session: object) -> None:
        async for ev in session:  # type: ignore[attr-defined]
            self.events.append(ev)
            self.at.append(time.monotonic())
            self._new.set()

    async def until(self, pred: object, timeout: float = 60.0) -> Event:  # noqa: ASYNC109
        async with asyncio.timeout(timeout):
            seen = 0
            while True:
                for ev in self.events[seen:]:
                    if pred(ev):  # type: ignore[operator]
                        return ev
                seen = len(self.events)
                self._new.clear()
                await self._new.wait()


def metric(node: HubProcess, name: str) -> float:
    """A node's value of the unlabelled metric `name` on /metrics."""
    for line in httpx.get(node.http + "/metrics").text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"no {name} in /metrics")


async def send(session: object, pcm: bytes) -> None:
    """`pcm` to an asrhub.client session in CHUNK pieces."""
    for i in range(0, len(pcm), CHUNK):
        await session.send(pcm[i:i + CHUNK])  # type: ignore[attr-defined]


@dataclass
class Midway:
    """An asrhub.client session one final in and halfway into its second sentence (its utterance open):
    where the takeover tests and bench kill the owner."""

    session: Any
    reader: Reader
    reading: asyncio.Task[None]
    final: Event        # the first sentence's final
    opened: Event       # speech.started of the second sentence
    rest: bytes         # the second sentence's other half, still to send


async def midway(client: Any) -> Midway:
    """Open a session on `client`, send the first sentence (FIRST) and half the second (SECOND), and wait
    for the first final and the second sentence's speech.started."""
    from asrhub.client import SpeechStarted, TranscriptFinal

    s = await client.session(audio=PCM)
    reader = Reader()
    reading = asyncio.create_task(reader.run(s))
    second = speech(SECOND)
    await send(s, speech(FIRST))
    final = await reader.until(lambda e: isinstance(e, TranscriptFinal))
    half = len(second) // 4 * 2  # half of it, whole samples
    await send(s, second[:half])
    opened = await reader.until(lambda e: isinstance(e, SpeechStarted) and e.seq > final.seq)
    return Midway(s, reader, reading, final, opened, second[half:])


class WsClient:
    """A WebSocket client of one session that can drop its connection and resume on any node."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.session_id = ""
        self.ws: Any = None
        self.close_code: int | None = None
        self.refusals: list[dict[str, Any]] = []

    @property
    def last_seq(self) -> int:
        return self.events[-1]["seq"] if self.events else 0

    @property
    def ended(self) -> bool:
        return bool(self.events) and self.events[-1]["type"] == "session.ended"

    async def connect(self, node: HubProcess, resume: bool = False) -> None:
        import websockets

        self.ws = await websockets.connect(node.ws, max_size=None)
        cmd: dict[str, Any] = dict(START)
        if resume:
            cmd["resume"] = {"session_id": self.session_id, "last_seq": self.last_seq}
        await self.ws.send(json.dumps(cmd))
        if not resume:
            first = await self.recv()
            assert first is not None and first["type"] == "session.started", first
            self.session_id = first["session_id"]

    async def resume_past_refusals(self, node: HubProcess, lease_ms: int) -> dict[str, Any] | None:
        """Resume on `node`; while the resume is refused for now (the session's node is dead or frozen
        and its lease lives: `node_lost` with `retry_after_ms` within (0, lease]), resume again when the
        refusal says. The first event of the session it gets (kept in `events`), or None: closed."""
        import websockets

        await self.connect(node, resume=True)
        while True:
            try:
                ev: dict[str, Any] = json.loads(await asyncio.wait_for(self.ws.recv(), 30))
            except websockets.ConnectionClosed as e:
                self.close_code = e.rcvd.code if e.rcvd else None
                return None
            if ev["seq"] != 0:
                self.events.append(ev)
                return ev
            assert ev["type"] == "error" and ev["code"] == "node_lost" and ev["fatal"] is False, ev
            assert 0 < ev["retry_after_ms"] <= lease_ms, ev
            self.refusals.append(ev)
            await self.ws.close()
            await asyncio.sleep(ev["retry_after_ms"] / 1000)  # as the refusal says
            await self.connect(node, resume=True)

    async def recv(self, timeout: float = 60.0, strict: bool = True) -> dict[str, Any] | None:  # noqa: ASYNC109
        """The next event of the session (kept in `events`); None when the hub closed the connection.
        An error outside the session (seq 0: e.g. a refused resume) fails the test when `strict`, else
        it is kept in `refusals`."""
        import websockets

        while True:
            try:
                msg = await asyncio.wait_for(self.ws.recv(), timeout)
            except websockets.ConnectionClosed as e:
                self.close_code = e.rcvd.code if e.rcvd else None
                return None
            ev: dict[str, Any] = json.loads(msg)
            if ev.get("seq", 0) != 0:
                break
            if strict:
                raise AssertionError(f"refused: {ev}")
            self.refusals.append(ev)
        self.events.append(ev)
        return ev

    async def recv_until(self, pred: Any, timeout: float = 60.0) -> dict[str, Any]:  # noqa: ASYNC109
        """The first event from now on that `pred` accepts (each event is awaited as it comes)."""
        async with asyncio.timeout(timeout):
            while True:
                ev = await self.recv(timeout)
                assert ev is not None, f"connection closed before the awaited event; got {self.events[-3:]}"
                if pred(ev):
                    return ev

    async def send_audio(self, pcm: bytes) -> None:
        for i in range(0, len(pcm), CHUNK):
            await self.ws.send(pcm[i:i + CHUNK])

    async def stop(self) -> None:
        await self.ws.send(json.dumps({"type": "stop"}))

    async def drop(self) -> None:
        await self.ws.close()

    async def rest(self, timeout: float = 60.0) -> None:  # noqa: ASYNC109
        """Every event up to session.ended."""
        while not self.ended:
            ev = await self.recv(timeout)
            assert ev is not None, f"closed before session.ended (code {self.close_code})"


def finals(events: list[dict[str, Any]]) -> list[str]:
    return [e["text"] for e in events if e["type"] == "transcript.final"]


def assert_gapless(events: list[dict[str, Any]]) -> None:
    seqs = [e["seq"] for e in events]
    assert seqs == list(range(1, len(seqs) + 1)), f"seqs not 1..N: {seqs}"


async def moved_after_a_final(cluster: Cluster) -> WsClient:
    """A session of node0 that has its first final, and whose client has moved to node1."""
    c = WsClient()
    await c.connect(cluster.nodes[0])
    await c.send_audio(speech(FIRST))
    await c.recv_until(lambda e: e["type"] == "transcript.final")
    await c.drop()
    await c.connect(cluster.nodes[1], resume=True)
    return c


async def bridged_mid_utterance(cluster: Cluster) -> WsClient:
    """A session of node0 whose client is now bridged on node1, in the middle of its second utterance."""
    c = await moved_after_a_final(cluster)
    second = speech(SECOND)
    await c.send_audio(second[: len(second) // 2])  # half a sentence: the utterance is open
    await c.recv_until(lambda e: e["type"] == "speech.started" and e["seq"] > 4)
    return c


def assert_ended_lost(events: list[dict[str, Any]]) -> None:
    err, end = events[-2], events[-1]
    assert err["type"] == "error" and err["code"] == "node_lost" and err["fatal"] is True, err
    assert end["type"] == "session.ended" and end["reason"] == "error", end
