"""`make bench`: every harness in turn, printing markdown tables for docs/BENCHMARKS.md.

Run it on a quiet machine: the figures are wall-clock latencies and CPU shares.
"""

from __future__ import annotations

import subprocess
import sys

HARNESSES = [
    ["bench.bench_latency"],
    ["bench.bench_operators"],
    ["bench.bench_store", "--sessions", "1", "100", "1000", "--events", "20000"],
    ["bench.bench_transports"],
    ["bench.bench_providers"],
    ["bench.bench_languages"],
    ["bench.bench_turns", "--hub"],  # silence vs semantic turn mode: endpoint delay, false cuts, final latency, WER
    ["bench.bench_concurrency", "--streams", "8", "12", "16", "20", "24", "32", "--seconds", "60"],
    ["bench.bench_concurrency", "--streams", "48", "--max-sessions", "24", "--seconds", "60"],  # overload
    ["bench.bench_capacity", "--streams", "250", "500", "1000"],
    ["bench.bench_cluster", "all"],  # redis-server and 2-3 nodes; talkers: taskset, one core per node
]


def main() -> int:
    status = 0
    for h in HARNESSES:
        print(f"\n## python -m {' '.join(h)}\n", flush=True)
        status |= subprocess.call([sys.executable, "-m", *h])
    return status


if __name__ == "__main__":
    raise SystemExit(main())
