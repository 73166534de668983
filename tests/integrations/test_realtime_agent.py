"""Issue 15 item 7: a Realtime-API agent transcribing through the hub — examples/realtime_agent.py run as its
own process (the official `openai` client) against a real hub, on real speech."""

from __future__ import annotations

import subprocess
import sys

from tests.support import REPO, HubProcess, clip, wer

JFK = clip("en_jfk")


def test_realtime_agent_example(hub: HubProcess) -> None:
    out = subprocess.run([sys.executable, str(REPO / "examples" / "realtime_agent.py"), hub.http + "/v1", "x",
                          str(JFK.path), "2.0"], capture_output=True, text=True, timeout=180)
    assert out.returncode == 0, out.stderr[-2000:]
    turns = [line.split(": ", 1)[1] for line in out.stdout.splitlines() if line.startswith("user turn ")]
    assert len(turns) >= 2, out.stdout  # JFK's sentence has pauses: several turns
    assert wer([JFK.transcript], [" ".join(turns)]) < 0.2, turns
