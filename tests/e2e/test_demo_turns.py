"""Issue 19 item 2: the demo page's turn-mode switch, in Debian chromium against a real hub (the default config,
whose hub serves the Smart Turn model from the pipecat-ai wheel).

A whole sentence (LJ001-0005) and 1.5 s of silence, streamed as a file:
- semantic at eagerness high, over each transport: the start command the browser sends carries
  `turn: {mode: semantic, eagerness: high}`, the hub's `session.started` config says semantic (shown in
  #session-info), the speech indicator says the turn model ended the utterance (`speech.ended` reason `turn`),
  and every final carries `end_of_turn`, shown as an "end of turn" marker after its text;
- silence (the default): the start command has no `turn` (the hub's config decides: silence), the utterance
  ends by silence and no final has the marker.
The controls themselves: the eagerness select shows only in semantic mode, both are reachable and changed by
keyboard, and both are off without voice activity detection."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
from playwright.sync_api import sync_playwright

from tests.e2e.browser import CHROMIUM, MicWav, launch, open_page, write_mic_wav
from tests.support import HubProcess, clip, wer

SENTENCE = "en_ljspeech_LJ001-0005"  # 8.1 s, one sentence: the turn model calls its end finished
TRANSPORTS = ["ws", "sse", "sio"]


@pytest.fixture(scope="module")
def sentence(tmp_path_factory: pytest.TempPathFactory) -> MicWav:
    """The sentence as 16 kHz mono WAV with 1.5 s of silence after it: room for the turn decision."""
    return write_mic_wav(clip(SENTENCE), tmp_path_factory.mktemp("turns") / "sentence.wav", tail_silence_s=1.5)


@pytest.fixture(scope="module")
def browser(sentence: MicWav) -> Iterator[Any]:
    assert Path(CHROMIUM).exists(), "chromium missing: `make test` installs it (apt-get install chromium)"
    with sync_playwright() as pw:
        b = launch(pw, sentence.path)
        yield b
        b.close()


@pytest.fixture
def context(browser: Any) -> Iterator[Any]:
    ctx = browser.new_context(viewport={"width": 1280, "height": 800})
    yield ctx
    ctx.close()


def record_sent(page: Any) -> list[tuple[str, str]]:
    """What the page sends that may be a start command: WebSocket text frames (the hub's WebSocket and
    Socket.IO's) and the bodies of `POST /v1/sessions` (SSE), as (kind, text)."""
    sent: list[tuple[str, str]] = []

    def on_ws(ws: Any) -> None:
        ws.on("framesent", lambda payload: sent.append(("ws", payload)) if isinstance(payload, str) else None)

    def on_request(r: Any) -> None:
        if r.method == "POST" and urlparse(r.url).path == "/v1/sessions":
            sent.append(("http", r.post_data or ""))

    page.on("websocket", on_ws)
    page.on("request", on_request)
    return sent


def start_commands(sent: list[tuple[str, str]]) -> list[dict[str, Any]]:
    """The start bodies among `record_sent`'s: `{"type": "start", ...}` (WebSocket), a Socket.IO event packet
    `42/asr,<ack>["start", {...}]`, or the SSE session POST."""
    out: list[dict[str, Any]] = []
    for kind, text in sent:
        if kind == "http":
            out.append(json.loads(text))
        elif text.startswith("42"):
            packet = json.loads(text[text.index("["):])
            if packet[0] == "start":
                out.append(packet[1])
        elif text.startswith("{"):
            msg = json.loads(text)
            if msg.get("type") == "start":
                out.append({k: v for k, v in msg.items() if k != "type"})
    return out


def finals(page: Any) -> list[dict[str, Any]]:
    """Each li.final: its text, data-end-of-turn, the marker's text and whether it comes after the text."""
    return list(page.eval_on_selector_all("#finals li.final", """lis => lis.map(li => {
        const text = li.querySelector('.final-text');
        const mark = li.querySelector('.final-eot');
        return {text: text.textContent, end_of_turn: li.dataset.endOfTurn ?? null,
                marker: mark ? mark.textContent : null, marker_visible: !!(mark && mark.offsetParent),
                marker_after_text: !!(mark && (text.compareDocumentPosition(mark) & Node.DOCUMENT_POSITION_FOLLOWING))};
    })"""))


def stream_file(page: Any, wav: MicWav) -> None:
    page.set_input_files("#file-input", str(wav.path))
    page.wait_for_function("document.querySelector('#status').dataset.state === 'closed'",
                           timeout=(wav.duration_ms + 60_000))
    assert page.get_attribute("#error", "data-code") == "", page.inner_text("#error")


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_semantic_mode_marks_the_end_of_turn(hub: HubProcess, context: Any, sentence: MicWav, transport: str) -> None:
    page = open_page(context, hub.http, f"?transport={transport}")
    sent = record_sent(page)
    assert not page.is_visible("#turn-eagerness")
    page.select_option("#turn-mode", "semantic")
    assert page.is_visible("#turn-eagerness")
    page.select_option("#turn-eagerness", "high")
    stream_file(page, sentence)

    starts = start_commands(sent)
    assert len(starts) == 1, sent
    assert starts[0]["turn"] == {"mode": "semantic", "eagerness": "high"}, starts
    info = page.locator("#session-info")
    assert info.get_attribute("data-turn-mode") == "semantic"  # the hub's session.started config.turn.mode
    assert "semantic turns (high)" in info.inner_text()
    # The sentence's end was the turn model's call (not the file's end: that would say "finalised").
    indicator = page.locator("#speech-indicator")
    assert indicator.get_attribute("data-reason") == "turn", indicator.inner_text()
    assert page.inner_text("#speech-reason").startswith("· end of turn ")
    shown = finals(page)
    assert [f for f in shown if f["text"]], shown
    for f in shown:
        assert f["end_of_turn"] == "true" and f["marker"] == "end of turn", f
        assert f["marker_visible"] and f["marker_after_text"], f
    hyp = " ".join(f["text"] for f in shown)
    assert wer([sentence.clip.transcript], [hyp]) <= 0.2, hyp


def test_silence_mode_sends_no_turn(hub: HubProcess, context: Any, sentence: MicWav) -> None:
    page = open_page(context, hub.http, "?transport=ws")
    sent = record_sent(page)
    assert page.input_value("#turn-mode") == "silence"
    page.select_option("#turn-mode", "semantic")
    page.select_option("#turn-mode", "silence")  # back again: nothing of semantic mode may stick
    stream_file(page, sentence)

    starts = start_commands(sent)
    assert len(starts) == 1 and "turn" not in starts[0], starts
    assert page.get_attribute("#session-info", "data-turn-mode") == "silence"  # the hub config's mode
    assert page.get_attribute("#speech-indicator", "data-reason") == "silence"
    shown = finals(page)
    assert [f for f in shown if f["text"]], shown
    assert all(f["end_of_turn"] is None and f["marker"] is None for f in shown), shown


def test_turn_controls_by_keyboard(hub: HubProcess, context: Any) -> None:
    page = open_page(context, hub.http)
    assert page.locator("label[for=turn-mode]").inner_text() == "End of turn"
    assert page.locator("label[for=turn-eagerness]").inner_text() == "Eagerness"
    page.focus("#turn-mode")
    page.keyboard.press("ArrowDown")
    assert page.input_value("#turn-mode") == "semantic"
    assert page.is_visible("#turn-eagerness")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "turn-eagerness"
    page.keyboard.press("ArrowDown")
    assert page.input_value("#turn-eagerness") == "low"
    page.uncheck("#vad-enabled")  # semantic mode needs the VAD
    assert page.is_disabled("#turn-mode") and page.is_disabled("#turn-eagerness")
    page.check("#vad-enabled")
    assert page.is_enabled("#turn-mode") and page.is_enabled("#turn-eagerness")
