"""A node's death and a Redis primary's failover in a cluster (issue 21, DESIGN §8): how fast a session
goes on, and whether it loses a word.

    .venv/bin/python -m bench.bench_takeover takeover --reps 6
    .venv/bin/python -m bench.bench_takeover sentinel --reps 4

- `takeover`: two nodes with the default lease (3000 ms) and bridge block; an `asrhub.client` WebSocket
  session on node A, in the middle of its second sentence; `kill -9` of A, the client reconnecting to
  node B. Times from the kill to `session.migrated` at the client (the first event after the takeover)
  and to the cut sentence's final; the final must come once, with its words (WER of both finals against
  the references), the seqs gapless. A is restarted and the roles swap for the next repetition.
- `sentinel`: a primary, a replica and three `redis-sentinel` (down-after-milliseconds 1000), two nodes
  on the `redis+sentinel://` URL; a session runs on node A; `kill -9` of the primary, the session goes on
  (its second sentence decoded meanwhile); times from the kill to `+switch-master`, from the switch to
  the session's log holding everything the client had (the owner rejoined), and of the client's resume on
  node B (connect + stop → session.ended). The old primary is started again (Sentinel makes it a
  replica) before the next repetition, which kills the primary of the moment.
Each row prints the load average (1 min): the machine may be shared.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import tempfile
import time
from pathlib import Path

from asrhub.client import SessionMigrated, TranscriptFinal, WebSocketClient
from bench.common import machine, pct
from tests.cluster.nodes import (
    FIRST,
    SECOND,
    Cluster,
    WsClient,
    assert_gapless,
    finals,
    midway,
    send,
    speech,
)
from tests.cluster.sentinel import MASTER, Sentinels
from tests.support import clip, wer


def load() -> str:
    return f"{os.getloadavg()[0]:.1f}"


async def takeover(reps: int) -> None:
    cluster = Cluster(Path(tempfile.mkdtemp()), 2, lease_ms=3000, bridge_block_ms=None)
    to_migrated: list[float] = []
    to_final: list[float] = []
    print("| rep | kill → session.migrated (s) | kill → the cut sentence's final (s) | WER | events | load avg |")
    print("|---|---|---|---|---|---|")
    try:
        for rep in range(reps):
            owner, other = cluster.nodes
            client = WebSocketClient(owner.http, reconnect_delay_s=0.1, max_reconnects=20)
            mid = await midway(client)
            s, reader, reading = mid.session, mid.reader, mid.reading
            client.base_url = other.http
            before = load()
            assert owner.proc is not None
            killed = time.monotonic()  # the Reader's clock
            owner.proc.send_signal(signal.SIGKILL)
            await send(s, mid.rest)
            await s.stop()
            await asyncio.wait_for(reading, 120)
            ev = reader.events
            m = next(i for i, e in enumerate(ev) if isinstance(e, SessionMigrated))
            cut = [i for i, e in enumerate(ev) if isinstance(e, TranscriptFinal) and i > m]
            texts = [e.text for e in ev if isinstance(e, TranscriptFinal)]
            assert [e.seq for e in ev] == list(range(1, len(ev) + 1))
            assert len(texts) == 2 and len(cut) == 1, texts
            w = wer([clip(FIRST).transcript, clip(SECOND).transcript], texts)
            to_migrated.append(reader.at[m] - killed)
            to_final.append(reader.at[cut[0]] - killed)
            print(f"| {rep + 1} | {to_migrated[-1]:.2f} | {to_final[-1]:.2f} | {w:.3f} | {len(ev)} | {before} |",
                  flush=True)
            await s.close()
            owner.proc.wait()
            owner.stop()
            owner.start()
            cluster.nodes.reverse()
    finally:
        cluster.stop()
    print(f"takeover, lease 3000 ms: kill → session.migrated p50 {pct(to_migrated, 50):.2f} s, p95 "
          f"{pct(to_migrated, 95):.2f} s (target p95 <= 4 s); kill → the cut sentence's final p50 "
          f"{pct(to_final, 50):.2f} s, max {max(to_final):.2f} s")


def logged_upto(sentinels: Sentinels, sid: str, seq: int) -> None:
    r = sentinels.client()
    r.connection_pool.connection_kwargs["socket_timeout"] = 30
    assert r.xread({f"ev:{sid}": f"0-{seq - 1}"}, block=25_000, count=1), "the log did not rejoin"


def restart_as_replica(sentinels: Sentinels, port: int) -> None:
    """Start the killed server again; Sentinel turns it into a replica of the new primary. Waits for the
    sentinels' `+convert-to-slave` or `-sdown` of it and for its replication link (setup, not a figure)."""
    watch = sentinels.sentinel(0).pubsub()
    watch.subscribe("+convert-to-slave", "-sdown")
    sentinels.servers[port].start()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        msg = watch.get_message(timeout=1.0)
        if msg and msg["type"] == "message" and f" {port} " in f" {msg['data'].decode()} ":
            break
    watch.close()
    replica = sentinels.servers[port].client()
    while time.monotonic() < deadline:
        info = replica.info("replication")
        if info.get("role") == "slave" and info.get("master_link_status") == "up":
            return
        time.sleep(0.2)
    raise RuntimeError(f"redis on {port} did not sync as a replica")


async def sentinel(reps: int) -> None:
    tmp = Path(tempfile.mkdtemp())
    sentinels = Sentinels(tmp).ready()
    cluster = Cluster(tmp, 2, redis=sentinels)
    switch: list[float] = []
    rejoin: list[float] = []
    resume: list[float] = []
    print("| rep | kill → +switch-master (s) | switch → log rejoined (s) | resume on node B + stop (s) | events | "
          "load avg |")
    print("|---|---|---|---|---|---|")
    try:
        for rep in range(reps):
            c = WsClient()
            await c.connect(cluster.nodes[0])
            await c.send_audio(speech(FIRST))
            await c.recv_until(lambda e: e["type"] == "transcript.final")
            port = sentinels.master_port()
            watch = sentinels.switch_watch()
            before = load()
            proc = sentinels.servers[port].proc
            assert proc is not None
            killed = time.perf_counter()
            proc.send_signal(signal.SIGKILL)
            await c.send_audio(speech(SECOND))
            await c.recv_until(lambda e: e["type"] == "transcript.final" and e["seq"] > 4)
            await asyncio.to_thread(Sentinels.switched, watch)
            switched = time.perf_counter()
            await asyncio.to_thread(logged_upto, sentinels, c.session_id, c.last_seq)
            rejoined = time.perf_counter()
            await c.drop()
            await c.connect(cluster.nodes[1], resume=True)
            await c.stop()
            await c.rest()
            done = time.perf_counter()
            assert_gapless(c.events)
            assert cluster.log(c.session_id) == c.events and c.events[-1]["reason"] == "stop"
            assert len(finals(c.events)) == 2
            switch.append(switched - killed)
            rejoin.append(rejoined - switched)
            resume.append(done - rejoined)
            print(f"| {rep + 1} | {switch[-1]:.2f} | {rejoin[-1]:.2f} | {resume[-1]:.2f} | {len(c.events)} | "
                  f"{before} |", flush=True)
            proc.wait()
            await asyncio.to_thread(restart_as_replica, sentinels, port)
    finally:
        cluster.stop()
    print(f"Sentinel failover (down-after 1000 ms): kill → +switch-master p50 {pct(switch, 50):.2f} s, max "
          f"{max(switch):.2f} s; switch → the owner's log rejoined p50 {pct(rejoin, 50):.2f} s, max "
          f"{max(rejoin):.2f} s; resume on the other node + stop answered max {max(resume):.2f} s; 0 sessions "
          f"ended, every client event in the log ({MASTER})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="what", required=True)
    sub.add_parser("takeover").add_argument("--reps", type=int, default=6)
    sub.add_parser("sentinel").add_argument("--reps", type=int, default=4)
    a = ap.parse_args()
    print(machine())
    asyncio.run(takeover(a.reps) if a.what == "takeover" else sentinel(a.reps))


if __name__ == "__main__":
    main()
