"""SIGTERM to exit: how long a hub with N open WebSocket sessions takes to drain (each session hears
`session.ended` with reason shutdown, its socket closed with 1000) and exit. The shutdown awaits the
connections that carry sessions (issue 20: no fixed sleep), so this is drain + their closing.

    python -m bench.bench_shutdown --sessions 1 20 --runs 3
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import tempfile
import time
from pathlib import Path

import websockets

from bench.common import machine, p50_p95
from tests.support import HubProcess, base_config


async def _one(hub: HubProcess, sessions: int) -> tuple[float, float, list[int | None]]:
    """(ms until every socket closed, ms until the process exited, the close codes)."""
    sockets = [await websockets.connect(hub.ws) for _ in range(sessions)]
    for ws in sockets:
        await ws.send(json.dumps({"type": "start"}))
        assert json.loads(await ws.recv())["type"] == "session.started"
    assert hub.proc is not None
    t0 = time.monotonic()
    hub.proc.send_signal(signal.SIGTERM)

    async def drained(ws: websockets.ClientConnection) -> None:
        async for _ in ws:
            pass

    await asyncio.gather(*(drained(ws) for ws in sockets))
    closed = (time.monotonic() - t0) * 1000
    await asyncio.to_thread(hub.proc.wait, 30)
    return closed, (time.monotonic() - t0) * 1000, [ws.close_code for ws in sockets]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sessions", type=int, nargs="+", default=[1, 20])
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    print(machine())
    print("| open sessions | sockets closed after SIGTERM, ms (p50 / p95) | process exited, ms (p50 / p95) |")
    print("|---|---|---|")
    for n in args.sessions:
        closed, exited = [], []
        for _ in range(args.runs):
            hub = HubProcess(base_config(limits="limits:\n  max_sessions: 500\n  max_sessions_per_key: 500\n"),
                             Path(tempfile.mkdtemp())).start()
            try:
                c, e, codes = asyncio.run(_one(hub, n))
            finally:
                hub.stop()
            assert codes == [1000] * n, codes  # every socket closed by the hub after session.ended
            closed.append(c)
            exited.append(e)
        print(f"| {n} | {p50_p95(closed)} | {p50_p95(exited)} |")


if __name__ == "__main__":
    main()
