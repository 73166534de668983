"""The hub as a cluster on Redis (issue 13, DESIGN §8): what it costs and how fast it recovers.

    .venv/bin/python -m bench.bench_cluster talkers --streams 4 5 6 7 --seconds 45
    .venv/bin/python -m bench.bench_cluster resume --sessions 10 --resumes 10
    .venv/bin/python -m bench.bench_cluster death --reps 5
    .venv/bin/python -m bench.bench_cluster memory --sessions 8 --seconds 60
    .venv/bin/python -m bench.bench_cluster chaos --clients 24 --minutes 10 --kill-every 60
    .venv/bin/python -m bench.bench_cluster all

- `talkers`: real-time talkers (bench_concurrency's streams: 50 % talk, 40 ms chunks) per node at final
  p95 <= 1 s. `single`: one hub pinned to core 0 (`taskset -c 0`), N talkers. `cluster`: redis-server and
  two nodes pinned to cores 0 and 1, 2N talkers split evenly (N per node). `pair` (optional): two
  stand-alone hubs pinned the same way, no Redis: the same client load as `cluster` without the cluster.
- `resume`: three nodes; each session starts on one, then moves again and again to a node that is neither
  its owner nor the last one, resuming `--rewind` events back (so there is always something to replay).
  Timed from opening the new connection to the first replayed event. Between moves it sends a second of
  speech through the bridge, then drops. Each session ends with `stop`; its client's events (deduplicated by
  seq) must be exactly 1..N and equal the log in Redis, and every replayed copy must equal the one held.
- `death`: two nodes with the default lease (3000 ms) and bridge block, takeover off
  (`ASRHUB_CLUSTER__TAKEOVER=false`: the end a session meets where takeover is impossible); a client of node
  A's session, bridged on node B mid-utterance; `kill -9` of A; time to `error{node_lost}` and to
  `session.ended` at the client. A is restarted and the roles swap for the next repetition. With takeover
  on (the default) the session moves instead: `python -m bench.bench_takeover takeover`.
- `memory`: live sessions after `--seconds` of real-time speech (half of them bridged, so their audio goes
  through `in:{id}`): `MEMORY USAGE … SAMPLES 0` of `sess:`, `ev:`, `in:`, per session and per entry, and
  the `INFO memory` used_memory delta per session.
- `chaos` (issue 21 item 4): three nodes behind nginx (deploy/nginx.conf), Redis behind Sentinel (a
  primary, a replica, three `redis-sentinel`), `--clients` `asrhub.client` talkers spread over WebSocket,
  SSE, Socket.IO and gRPC, each streaming real speech (the clips of tests/cluster/chaos.py's cycle, looped)
  at real-time pace for `--minutes`; every `--kill-every` s the node owning the most sessions is `kill -9`'d
  (while one of its sessions is mid-utterance) and restarted; the Redis primary is `kill -9`'d once,
  midway. Words lost against a single-node decode of the same clips (the allowance at a replayed
  utterance's cut is defined in tests/cluster/chaos.py), sessions ended abnormally, seqs, kill → first
  event after takeover p50/p95 and beside it lease expiry → first event (the victim's `PTTL node:{id}`
  read at the kill: the kill's phase in the lease's renewal, 2-3 s of a 3 s lease whatever the code does,
  taken out), takeovers: a markdown table. `all` leaves it out (it takes `--minutes`).
Each figure is printed with the load average (1 min) at its start and end: the machine may be shared.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import websockets

from bench.bench_concurrency import CHUNK_MS, run_n
from bench.common import SPEECH_ROOT, machine, mean, p50_p95, pct
from tests.cluster.nodes import (
    START,
    Cluster,
    WsClient,
    assert_ended_lost,
    assert_gapless,
    bridged_mid_utterance,
    speech,
)
from tests.support import HubProcess, base_config, english, load_pcm16

P95_TARGET_MS = 1000.0


def load() -> str:
    return f"{os.getloadavg()[0]:.1f}"


def pinned(core: int) -> list[str]:
    return ["taskset", "-c", str(core), sys.executable, "-m", "asrhub.cli"]


@dataclass
class Losses:
    """Events lost, duplicated with a different body, or out of 1..N, over every client checked."""
    clients: int = 0
    events: int = 0
    lost: int = 0
    mismatched: int = 0
    notes: list[str] = field(default_factory=list)

    def check(self, events: list[dict[str, Any]], logged: list[dict[str, Any]]) -> None:
        self.clients += 1
        self.events += len(events)
        seqs = [e["seq"] for e in events]
        n = max([*seqs, *(e["seq"] for e in logged)], default=0)
        self.lost += n - len(set(seqs))
        if seqs != list(range(1, len(seqs) + 1)):
            self.notes.append(f"seqs not 1..N: {seqs}")
        if events != logged:
            self.notes.append(f"client events differ from the log ({len(events)} vs {len(logged)})")

    def line(self) -> str:
        return (f"clients {self.clients}, events {self.events}, lost {self.lost}, replayed copies that differ "
                f"{self.mismatched}" + (f"; {'; '.join(self.notes[:3])}" if self.notes else ""))


# --- 1. talkers per node ---------------------------------------------------------------------------------

async def talkers(streams: list[int], seconds: float, modes: list[str]) -> None:
    clips = [load_pcm16(c.path).tobytes() for c in english(SPEECH_ROOT) if c.seconds < 15]
    print(f"machine: {machine()}; {seconds:.0f} s per talker, 50% talk, {CHUNK_MS} ms chunks")
    print("| mode | talkers per node | nodes | final latency p50 / p95 (ms) | finals | refused | errors "
          "| load avg start → end |")
    print("|---|---|---|---|---|---|---|---|")
    best: dict[str, int] = {}
    p95s: dict[tuple[str, int], float] = {}
    for mode in modes:
        tmp = Path(tempfile.mkdtemp())
        cluster: Cluster | None = None
        hubs: list[HubProcess] = []
        if mode == "cluster":
            cluster = Cluster(tmp, 2, lease_ms=3000, bridge_block_ms=None, command=pinned)
            hubs = cluster.nodes
        else:
            hubs = [HubProcess(base_config(), tmp, command=pinned(i)).start()
                    for i in range(1 if mode == "single" else 2)]
        try:
            for n in streams:
                before = load()
                r = await run_n([h.ws for h in hubs], clips, n * len(hubs), seconds)
                p95 = pct(r["latency"], 95)
                p95s[mode, n] = p95
                if p95 <= P95_TARGET_MS and not r["refused"] and not r["errors"]:
                    best[mode] = max(best.get(mode, 0), n)
                print(f"| {mode} | {n} | {len(hubs)} | {p50_p95(r['latency'])} | {r['finals']} | {r['refused']} "
                      f"| {len(r['errors'])} | {before} → {load()} |", flush=True)
        finally:
            if cluster is not None:
                cluster.stop()
            else:
                for h in hubs:
                    h.stop()
    for mode in modes:
        print(f"{mode}: {best.get(mode, 0)} talkers per node at final p95 <= 1 s")
    if "single" in best and "cluster" in best:
        cost = 100 * (best["single"] - best["cluster"]) / best["single"]
        print(f"cluster cost in talkers per node: {cost:.0f} % (target <= 5 %)")
    for n in streams:
        if ("single", n) in p95s and ("cluster", n) in p95s:
            s, c = p95s["single", n], p95s["cluster", n]
            print(f"{n} per node: p95 single {s:.0f} ms, cluster {c:.0f} ms ({100 * (c - s) / s:+.0f} %)")


# --- 2. resume on another node -------------------------------------------------------------------------

async def timed_resume(c: WsClient, node: HubProcess, last_seq: int, losses: Losses) -> float:
    """Resume `c`'s session on `node` after `last_seq`; ms from opening the connection to the first
    replayed event. Reads the replay up to the newest event the client holds (each must equal the copy
    held); later events stay unread (the next resume replays them)."""
    t0 = time.perf_counter()
    c.ws = await websockets.connect(node.ws, max_size=None)
    await c.ws.send(json.dumps({**START, "resume": {"session_id": c.session_id, "last_seq": last_seq}}))
    took = -1.0
    while True:
        ev = json.loads(await asyncio.wait_for(c.ws.recv(), 30))
        if ev.get("seq", 0) == 0:
            raise RuntimeError(f"resume refused: {ev}")
        if took < 0:
            took = (time.perf_counter() - t0) * 1000
            if ev["seq"] != last_seq + 1:
                losses.notes.append(f"first replayed seq {ev['seq']} after last_seq {last_seq}")
        if ev["seq"] <= c.last_seq:
            if c.events[ev["seq"] - 1] != ev:
                losses.mismatched += 1
        else:
            c.events.append(ev)
        if ev["seq"] >= c.last_seq:
            return took


async def resume(sessions: int, resumes: int, rewind: int) -> Losses:
    tmp = Path(tempfile.mkdtemp())
    cluster = Cluster(tmp, 3, lease_ms=3000, bridge_block_ms=None)
    names = [c.file.split(".")[0] for c in english() if 3 < c.seconds < 15]
    losses = Losses()
    times: list[float] = []
    before = load()
    try:
        for s in range(sessions):
            owner = s % 3
            c = WsClient()
            await c.connect(cluster.nodes[owner])
            pcm = speech(names[s % len(names)], names[(s + 1) % len(names)])
            second = 32000
            await c.send_audio(pcm[:2 * second])
            await c.recv_until(lambda e: e["type"] in ("speech.started", "transcript.partial", "transcript.final"))
            at = owner
            for k in range(resumes):
                await c.drop()
                at = next(i for i in ((at + j) % 3 for j in (1, 2)) if i != owner)
                times.append(await timed_resume(c, cluster.nodes[at], max(0, c.last_seq - rewind), losses))
                piece = pcm[(2 + k) * second:(3 + k) * second]
                if piece:
                    await c.send_audio(piece)
            await c.drop()
            await timed_resume(c, cluster.nodes[(owner + 1) % 3], max(0, c.last_seq - rewind), losses)
            await c.stop()
            await c.rest()
            await c.ws.close()
            losses.check(c.events, cluster.log(c.session_id))
    finally:
        cluster.stop()
    print(f"resume on another node, {len(times)} resumes ({sessions} sessions x {resumes}, {rewind} events "
          f"back): open connection → first replayed event p50 / p95 / max {pct(times, 50):.1f} / "
          f"{pct(times, 95):.1f} / {max(times):.1f} ms (target p95 <= 50); load avg {before} → {load()}")
    print(f"events: {losses.line()}")
    return losses


# --- 3. owner death ------------------------------------------------------------------------------------

async def death(reps: int) -> Losses:
    tmp = Path(tempfile.mkdtemp())
    # the defaults of both; takeover off, or the session would move to B instead of ending (bench_takeover)
    cluster = Cluster(tmp, 2, lease_ms=3000, bridge_block_ms=None, env={"ASRHUB_CLUSTER__TAKEOVER": "false"})
    losses = Losses()
    to_error: list[float] = []
    to_end: list[float] = []
    left: list[tuple[int, int]] = []  # in:{id} of the dead owner's session: (exists, TTL) 2 s after the end
    print("| rep | kill → error{node_lost} (s) | kill → session.ended (s) | events | load avg |")
    print("|---|---|---|---|---|")
    try:
        for rep in range(reps):
            c = await bridged_mid_utterance(cluster)
            owner = cluster.nodes[0]
            assert owner.proc is not None and cluster.owner(c.session_id) == f"node{rep % 2}"
            held = c.last_seq
            before = load()
            killed = time.perf_counter()
            owner.proc.send_signal(signal.SIGKILL)
            t_err = 0.0
            while not c.ended:
                ev = await c.recv(30)
                if ev is None:
                    raise RuntimeError(f"closed before session.ended (code {c.close_code})")
                if ev["type"] == "error" and ev["seq"] > held and not t_err:
                    t_err = time.perf_counter() - killed
            t_end = time.perf_counter() - killed
            to_error.append(t_err)
            to_end.append(t_end)
            assert_gapless(c.events)
            assert_ended_lost(c.events)
            losses.check(c.events, cluster.log(c.session_id))
            inbox = f"in:{c.session_id}"
            await c.ws.close()
            await asyncio.sleep(2)  # the bridge has let go of the session
            left.append((int(cluster.redis.client().exists(inbox)), int(cluster.redis.client().ttl(inbox))))
            print(f"| {rep + 1} | {t_err:.2f} | {t_end:.2f} | {len(c.events)} | {before} |", flush=True)
            owner.proc.wait()
            owner.stop()
            owner.start()
            cluster.nodes.reverse()  # the restarted node is the bridge next time
    finally:
        cluster.stop()
    print(f"owner death, lease 3000 ms, takeover off: kill → session.ended mean {mean(to_end):.2f} s, max {max(to_end):.2f} s "
          f"(target <= 5 s); kill → error mean {mean(to_error):.2f} s")
    print(f"in:{{id}} of the dead owner's sessions 2 s after session.ended, (exists, TTL): {left}")
    print(f"events: {losses.line()}")
    return losses


# --- 4. Redis memory -----------------------------------------------------------------------------------

async def paced(c: WsClient, pcm: bytes) -> None:
    step = 32 * CHUNK_MS
    t0 = time.perf_counter()
    for i in range(0, len(pcm), step):
        await c.ws.send(pcm[i:i + step])
        delay = t0 + (i + step) / 32000 - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)


async def drain(c: WsClient) -> None:
    while await c.recv(120) is not None and not c.ended:
        pass


async def memory(sessions: int, seconds: float) -> None:
    tmp = Path(tempfile.mkdtemp())
    cluster = Cluster(tmp, 2, lease_ms=3000, bridge_block_ms=None)
    r = cluster.redis.client()
    clips = [c for c in english() if c.seconds < 15]
    used0 = int(r.info("memory")["used_memory"])
    before = load()
    clients = [WsClient() for _ in range(sessions)]
    bridged = set(range(0, sessions, 2))
    try:
        for i, c in enumerate(clients):
            await c.connect(cluster.nodes[i % 2])
            if i in bridged:
                await c.drop()
                await c.connect(cluster.nodes[(i + 1) % 2], resume=True)
        audio: list[bytes] = []
        for i in range(sessions):
            names, pcm = [], b""
            j = i
            while len(pcm) < seconds * 32000:
                names.append(clips[j % len(clips)].file.split(".")[0])
                pcm = speech(*names)
                j += 1
            audio.append(pcm[:int(seconds * 32000)])
        readers = [asyncio.create_task(drain(c)) for c in clients]
        await asyncio.gather(*(paced(c, a) for c, a in zip(clients, audio, strict=True)))
        await asyncio.sleep(1.0)  # the last chunk's events
        used1 = int(r.info("memory")["used_memory"])
        rows: dict[str, list[float]] = {"sess": [], "ev": [], "in": [], "ev_len": [], "in_len": []}
        for c in clients:
            for k in ("sess", "ev", "in"):
                rows[k].append(float(r.memory_usage(f"{k}:{c.session_id}", samples=0) or 0))
            rows["ev_len"].append(float(r.xlen(f"ev:{c.session_id}")))
            rows["in_len"].append(float(r.xlen(f"in:{c.session_id}")))
        for c in clients:
            await c.stop()
        await asyncio.wait_for(asyncio.gather(*readers), 120)
        inbox_left = sum(int(r.exists(f"in:{c.session_id}")) for c in clients)
        ev_ttl = [int(r.ttl(f"ev:{c.session_id}")) for c in clients]
        in_ttl = sorted({int(r.ttl(f"in:{c.session_id}")) for c in clients})  # -2: gone, -1: no expiry
        lost = Losses()
        for c in clients:
            lost.check(c.events, cluster.log(c.session_id))
        await asyncio.sleep(max(ev_ttl) + 2)  # the resume window: the owner forgets the session
        inbox_later = sum(int(r.exists(f"in:{c.session_id}")) for c in clients)
        keys_later = sum(int(r.exists(f"{k}:{c.session_id}")) for c in clients for k in ("sess", "ev"))
        event_bytes = mean([len(json.dumps(e)) for c in clients for e in c.events])
    finally:
        cluster.stop()
    b = [i for i in range(sessions) if i in bridged]
    print(f"{sessions} live sessions ({len(b)} bridged) after {seconds:.0f} s of real-time speech in "
          f"{CHUNK_MS} ms chunks; load avg {before} → {load()}")
    print("| key | MEMORY USAGE per session, mean (bytes) | entries per session, mean | bytes per entry |")
    print("|---|---|---|---|")
    print(f"| sess:{{id}} | {mean(rows['sess']):.0f} | – | – |")
    print(f"| ev:{{id}} | {mean(rows['ev']):.0f} | {mean(rows['ev_len']):.0f} | "
          f"{sum(rows['ev']) / max(1, sum(rows['ev_len'])):.0f} |")
    bin_ = [rows["in"][i] for i in b]
    bin_len = [rows["in_len"][i] for i in b]
    print(f"| in:{{id}} (bridged sessions only) | {mean(bin_):.0f} | {mean(bin_len):.0f} | "
          f"{sum(bin_) / max(1, sum(bin_len)):.0f} |")
    print(f"INFO used_memory delta per live session: {(used1 - used0) / sessions:.0f} bytes "
          f"(total {used1 - used0} for {sessions})")
    print(f"mean event JSON: {event_bytes:.0f} bytes; right after session.ended: in:{{id}} left {inbox_left} "
          f"(TTL {in_ttl}), ev:{{id}} TTL {min(ev_ttl)}–{max(ev_ttl)} s; after the resume window + 2 s: in:{{id}} "
          f"left {inbox_later}, sess:/ev: left {keys_later}; events: {lost.line()}")


# --- 5. chaos under load --------------------------------------------------------------------------------

async def chaos(clients: int, minutes: float, kill_every: float, lease_ms: int, gap_s: float) -> None:
    from tests.cluster.chaos import Chaos

    tmp = Path(tempfile.mkdtemp())
    c = Chaos(tmp, nodes=3, lease_ms=lease_ms, bridge_block_ms=None)
    try:
        report = await c.run(clients, minutes * 60, kill_every, failover=True, gap_s=gap_s, drain_s=600.0,
                             progress=lambda line: print(f"[{time.strftime('%H:%M:%S')}] {line}", flush=True))
    finally:
        c.stop()
    report.dump(tmp / "events.jsonl")
    print(report.table())
    print(f"events of every talker: {tmp / 'events.jsonl'}; nodes' logs: {tmp}")


# --- CLI -----------------------------------------------------------------------------------------------

async def run_all(a: argparse.Namespace) -> None:
    await talkers(a.streams, a.seconds, a.modes)
    r = await resume(a.sessions, a.resumes, a.rewind)
    d = await death(a.reps)
    await memory(a.memory_sessions, a.memory_seconds)
    print(f"events lost over resume + death: {r.lost + d.lost} of {r.events + d.events} "
          f"(replayed copies that differ: {r.mismatched + d.mismatched})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("talkers")
    t.add_argument("--streams", type=int, nargs="+", default=[4, 5, 6, 7], help="talkers per node")
    t.add_argument("--seconds", type=float, default=45)
    t.add_argument("--modes", nargs="+", choices=["single", "pair", "cluster"], default=["single", "cluster"])
    r = sub.add_parser("resume")
    r.add_argument("--sessions", type=int, default=10)
    r.add_argument("--resumes", type=int, default=10)
    r.add_argument("--rewind", type=int, default=3, help="resume this many events before the newest held")
    d = sub.add_parser("death")
    d.add_argument("--reps", type=int, default=5)
    m = sub.add_parser("memory")
    m.add_argument("--sessions", type=int, default=8)
    m.add_argument("--seconds", type=float, default=60)
    ch = sub.add_parser("chaos")
    ch.add_argument("--clients", type=int, default=24, help="talkers, spread over the four transports")
    ch.add_argument("--minutes", type=float, default=10, help="speech each talker streams, at real-time pace")
    ch.add_argument("--kill-every", type=float, default=60, help="seconds of audio between node kills")
    ch.add_argument("--lease-ms", type=int, default=3000, help="cluster.lease_ms (the default 3000)")
    ch.add_argument("--gap-s", type=float, default=1.0, help="silence after each clip")
    al = sub.add_parser("all")
    al.add_argument("--streams", type=int, nargs="+", default=[4, 5, 6, 7])
    al.add_argument("--seconds", type=float, default=45)
    al.add_argument("--modes", nargs="+", choices=["single", "pair", "cluster"], default=["single", "pair", "cluster"])
    al.add_argument("--sessions", type=int, default=10)
    al.add_argument("--resumes", type=int, default=10)
    al.add_argument("--rewind", type=int, default=3)
    al.add_argument("--reps", type=int, default=5)
    al.add_argument("--memory-sessions", type=int, default=8)
    al.add_argument("--memory-seconds", type=float, default=60)
    a = ap.parse_args()
    print(f"machine: {machine()}; load avg {load()}")
    if a.cmd == "talkers":
        asyncio.run(talkers(a.streams, a.seconds, a.modes))
    elif a.cmd == "resume":
        asyncio.run(resume(a.sessions, a.resumes, a.rewind))
    elif a.cmd == "death":
        asyncio.run(death(a.reps))
    elif a.cmd == "memory":
        asyncio.run(memory(a.sessions, a.seconds))
    elif a.cmd == "chaos":
        asyncio.run(chaos(a.clients, a.minutes, a.kill_every, a.lease_ms, a.gap_s))
    else:
        asyncio.run(run_all(a))


if __name__ == "__main__":
    main()
