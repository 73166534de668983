"""The control plane's cost per event: actions through the real store (middleware, reducers, every
effect, the router) into real session channels, with N live sessions in the store.

Each partial and final now travels as one action (DESIGN §2: one path for every event type), so this
is the per-event overhead the store adds on top of the data plane. Prints a markdown table.

    python -m bench.bench_store --sessions 1 100 1000 --events 20000
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from typing import Any

from pystorex import Action

from asrhub.core.channel import EventChannel
from asrhub.core.events import TranscriptPartial
from asrhub.engine.metrics import HubMetrics, MetricsEffects
from asrhub.store.base import EventPayload
from asrhub.store.root import build_store
from asrhub.store.sessions import actions as A


class Ports:
    """StreamPort/FailoverPort that answer at once, and a ChannelPort over real EventChannels."""

    def __init__(self) -> None:
        self.channels: dict[str, EventChannel] = {}

    def open_stream(self, session_id: str) -> Sequence[Action[Any]]:
        return ()

    def close_stream(self, session_id: str) -> Sequence[Action[Any]]:
        return ()

    def end_session(self, session_id: str, reason: str) -> Sequence[Action[Any]]:
        return ()

    def provider_failed(self, *args: Any) -> Sequence[Action[Any]]:
        return ()

    def final_timed_out(self, *args: Any) -> Sequence[Action[Any]]:
        return ()

    def provider_down(self, *args: Any) -> Sequence[Action[Any]]:
        return ()

    def probe(self, provider: str) -> None:
        return None

    def deliver(self, payload: EventPayload) -> None:
        self.channels[payload.session_id].emit(payload.event)


def run(sessions: int, events: int) -> float:
    ports = Ports()
    store = build_store(ports, ports, ports, MetricsEffects(HubMetrics(), lambda: store.state))
    ids = [f"s{i}" for i in range(sessions)]
    for sid in ids:
        ports.channels[sid] = EventChannel(sid, 1 << 30)
        store.dispatch(A.created(A.Created(sid, "p", "bench", None, 0.0)))
    partial = [A.partial_emitted(A.PartialEmitted(sid, TranscriptPartial(
        session_id=sid, utterance_id="u1", text="hello there", stable_text="hello", start_ms=0, end_ms=900)))
        for sid in ids]
    t0 = time.perf_counter()
    for i in range(events):
        store.dispatch(partial[i % sessions])
    return events / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--sessions", type=int, nargs="+", default=[1, 100, 1000])
    ap.add_argument("--events", type=int, default=20000)
    args = ap.parse_args()
    print("| live sessions | events/s through the store (partial → channel) | µs per event |")
    print("|---|---|---|")
    for n in args.sessions:
        rate = run(n, args.events)
        print(f"| {n} | {rate:,.0f} | {1e6 / rate:.0f} |", flush=True)


if __name__ == "__main__":
    main()
