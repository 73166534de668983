"""Chaos under load, two minutes (issue 21 item 4; the ten-minute run is `python -m bench.bench_cluster
chaos`): three nodes behind nginx on Redis behind Sentinel, six `asrhub.client` talkers over WebSocket,
SSE, Socket.IO and gRPC streaming real speech at real-time pace; two nodes `kill -9`'d (each the owner of
the most sessions, while one of them is mid-utterance) and restarted, and the Redis primary killed once
between them. The issue's targets: no session ends abnormally, no word is lost (against a single-node
decode of the same clips, with the one word allowed at a replayed utterance's cut: tests/cluster/chaos.py),
every talker's events are exactly 1..N and match the log, every session of a killed node is taken over,
and a kill → the first event after the takeover (`session.migrated` at the client) is at most the lease
+ 1 s at p95, counted from the killed process's exit (its clients' sockets close then). How fast the nodes decode is not a target here: slow finals only make the run longer."""

from __future__ import annotations

from pathlib import Path

from bench.common import pct
from tests.cluster.chaos import Chaos

LEASE_MS = 1500
SECONDS = 120.0
KILL_EVERY_S = 45.0  # kills at 45 and 90 s of audio, the failover at 67.5 s


async def test_chaos_two_minutes(tmp_path: Path) -> None:
    chaos = Chaos(tmp_path, nodes=3, lease_ms=LEASE_MS, bridge_block_ms=250)
    try:
        report = await chaos.run(6, SECONDS, KILL_EVERY_S, failover=True, drain_s=240.0, progress=print)
    finally:
        chaos.stop()
    report.dump(tmp_path / "events.jsonl")
    print("\n" + report.table() + f"\nevents: {tmp_path / 'events.jsonl'}")
    assert len(report.kills) == 2 and len(report.failovers) == 1
    assert report.abnormal == []
    assert report.seq_problems == []
    words = report.words
    assert words.lost == 0, words.notes
    times, after_exit, missing = report.takeover_times()
    assert missing == []
    assert len(times) >= 2 and report.takeovers >= len(times), (times, report.takeovers)
    # from the killed process's exit: until then the sockets of its clients are open (on a loaded machine a
    # kill -9'd hub took up to seconds to exit), and a client cannot tell it is gone
    assert pct(after_exit, 95) <= LEASE_MS / 1000 + 1.0, (times, [k.dead_s for k in report.kills])
