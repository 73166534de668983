from __future__ import annotations

import statistics
import sys
from typing import Any


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Print the browser latency figure (end of speech in the fake microphone -> final on screen)."""
    mod = sys.modules.get("tests.e2e.test_demo_page")
    runs = getattr(mod, "MIC_LATENCIES", None)
    if not runs:
        return
    each = ", ".join(f"{r['transport']} {r['ms']:.0f} ms (hub {r['hub_latency_ms']} ms)" for r in runs)
    p50 = statistics.median(r["ms"] for r in runs)
    terminalreporter.write_line(f"browser end of speech -> final on screen: p50 {p50:.0f} ms over {len(runs)} "
                                f"microphone runs: {each}")
