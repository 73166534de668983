"""The demo page through a takeover (issue 21 item 1, DESIGN §8): Debian chromium (Playwright) on the page
served through nginx in front of two hub nodes on one redis-server; a WAV of two sentences streamed by the
page's file upload at real-time pace over WebSocket, HTTP + SSE and Socket.IO; `kill -9` of the session's
node in the middle of the second sentence.
The page reconnects through nginx to the surviving node, which takes the session over, and sends again the
audio it held since the first final (from `audio_from_ms`): the cut sentence's final is on screen once,
with its words, in the same session."""

from __future__ import annotations

import signal
import wave
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import sync_playwright

from tests.cluster.nodes import FIRST, SECOND, Cluster, speech
from tests.cluster.test_nginx import NGINX, Nginx
from tests.e2e.browser import CHROMIUM, launch, open_page, records, write_mic_wav
from tests.support import clip, wer

# what the page says (its #notice), each text as it appears
NOTICES = r"""
(() => {
  const seen = (window.__notices = []);
  const watch = () => new MutationObserver(() => {
    const t = document.getElementById("notice").textContent.trim();
    if (t) seen.push(t);
  }).observe(document.getElementById("notice"), { subtree: true, childList: true, characterData: true });
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", watch);
  else watch();
})();
"""


@pytest.fixture
def deployment(tmp_path: Path) -> Iterator[tuple[Cluster, Nginx]]:
    if NGINX is None:
        pytest.fail("no nginx binary (scripts/bootstrap-test.sh installs Debian's nginx)")
    nodes = Cluster(tmp_path, 2)
    front: Nginx | None = None
    try:
        front = Nginx(tmp_path / "nginx", nodes.nodes).start()
        yield nodes, front
    finally:
        if front is not None:
            front.stop()
        nodes.stop()


def two_sentences(path: Path) -> Path:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(speech(FIRST, SECOND))
    return path


@pytest.mark.parametrize("transport", ["ws", "sse", "sio"])
def test_demo_page_resends_its_held_audio_after_a_takeover(deployment: tuple[Cluster, Nginx], tmp_path: Path,
                                                          transport: str) -> None:
    cluster, front = deployment
    assert Path(CHROMIUM).exists(), "chromium missing: `make test` installs it (apt-get install chromium)"
    audio = two_sentences(tmp_path / "two.wav")
    mic = write_mic_wav(clip(FIRST), tmp_path / "mic.wav")  # (chromium wants a capture file; not used here)
    with sync_playwright() as pw:
        browser = launch(pw, mic.path)
        try:
            context = browser.new_context(viewport={"width": 1280, "height": 800})
            context.add_init_script(NOTICES)
            page = open_page(context, front.http, f"?transport={transport}&reconnect_s=60")
            page.set_input_files("#file-input", str(audio))
            # the first sentence's final, then a partial of the second with some of its words: the
            # utterance is open, a good part of it heard by the node about to die
            page.wait_for_function("window.__e2e.finals.length > 0", timeout=60_000)
            page.wait_for_function("window.__e2e.partials.some(p => p.t > window.__e2e.finals[0].t"
                                   " && p.text.split(/\\s+/).length >= 5)", timeout=30_000)
            first = records(page)["finals"][0]
            sid = first["session_id"]
            owner = cluster.owner(sid)
            node = cluster.nodes[int(owner.removeprefix("node"))]
            assert node.proc is not None
            node.proc.send_signal(signal.SIGKILL)
            page.wait_for_function("document.querySelector('#status').getAttribute('data-state') === 'closed'",
                                   timeout=120_000)
            rec: dict[str, Any] = records(page)
            notices: list[str] = page.evaluate("window.__notices")
        finally:
            browser.close()

    logged = cluster.log(sid)
    moved = [e for e in logged if e["type"] == "session.migrated"]
    assert len(moved) == 1 and moved[0]["from_node"] == owner, moved
    assert moved[0]["audio_from_ms"] == first["end_ms"], (moved[0], first)
    assert any("took the session over" in n for n in notices), notices
    finals = [e for e in logged if e["type"] == "transcript.final"]
    assert [f["utterance_id"] for f in finals] == ["u1", "u2"], [(f["utterance_id"], f["text"]) for f in finals]
    shown = {(f["session_id"], f["start_ms"], f["text"]) for f in rec["finals"]}
    assert {s[0] for s in shown} == {sid}, shown  # one session all along
    assert {s[2] for s in shown} == {f["text"] for f in finals}, (shown, finals)
    refs = [clip(FIRST).transcript, clip(SECOND).transcript]
    print(f"\ndemo page takeover ({transport}): finals {[f['text'] for f in finals]}; notices {notices}")
    assert wer([refs[1]], [finals[1]["text"]]) < 0.25, finals[1]["text"]  # both halves of the cut sentence
    assert wer(refs, [f["text"] for f in finals]) < 0.25, [f["text"] for f in finals]
    assert logged[-1]["type"] == "session.ended" and logged[-1]["reason"] == "stop", logged[-1]
    if transport == "sse":  # the page sends the takeover epoch back (?epoch=): the migration's seq after it
        survivor = cluster.nodes[1 - int(owner.removeprefix("node"))]
        posted = survivor.log.read_text()
        assert f"/v1/sessions/{sid}/audio?epoch={moved[0]['seq']} HTTP/1.1\" 202" in posted, moved[0]
