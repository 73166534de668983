"""Issue 15 item 5: the demo page on a hub with API keys, in a real browser, over each transport.

The key is typed (here: prefilled from ?token=, which the page then drops from its address); the page
gets a short-lived token from POST /v1/tokens and puts only that in WebSocket / EventSource URLs and the
Socket.IO connect. Every URL the browser requests after the page loads is recorded: none may hold the
key. The uploaded file is transcribed as on an open hub."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.browser import chromium, open_page, records, write_mic_wav
from tests.support import HubProcess, clip, keyed_config, running, wer

KEY = "page-key-0123456789"
FILE = Path(__file__).resolve().parents[1] / "data" / "speech" / "en_libri_1089-134691-0001.flac"
FILE_TEXT = "FOR A FULL HOUR HE HAD PACED UP AND DOWN WAITING BUT HE COULD WAIT NO LONGER"


@pytest.fixture(scope="module")
def keyed_hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HubProcess]:
    cfg = keyed_config({"key": KEY, "name": "page"})
    yield from running(cfg, tmp_path_factory.mktemp("keyed-page"))


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    mic = write_mic_wav(clip("en_libri_1221-135766"), tmp_path_factory.mktemp("mic") / "mic.wav")
    yield from chromium(mic.path)


@pytest.mark.parametrize("transport", ["ws", "sse", "sio"])
def test_page_uses_short_lived_tokens(keyed_hub: HubProcess, browser: Any, transport: str) -> None:
    ctx = browser.new_context()
    try:
        page = open_page(ctx, keyed_hub.http, f"?transport={transport}&token={KEY}")
        assert KEY not in page.url and "token=" not in page.url, page.url
        assert page.input_value("#api-key") == KEY
        urls: list[str] = []
        page.on("request", lambda r: urls.append(r.url))
        page.on("websocket", lambda ws: urls.append(ws.url))
        page.set_input_files("#file-input", str(FILE))
        page.wait_for_function("document.querySelector('#status').dataset.state === 'closed'", timeout=60_000)
        rec = records(page)
        hyp = " ".join(f["text"] for f in rec["finals"] if f["text"])
        assert wer([FILE_TEXT], [hyp]) <= 0.2, hyp
        assert page.get_attribute("#error", "data-code") == "", page.inner_text("#error")
    finally:
        ctx.close()
    assert not [u for u in urls if KEY in u], urls
    assert any(u.endswith("/v1/tokens") for u in urls), urls
    if transport in ("ws", "sse"):  # the URL that cannot carry a header carries the token
        assert any("token=ast1." in u for u in urls), urls
    else:  # Socket.IO: the token is in the connect packet, not the URL
        assert not [u for u in urls if "token=" in u], urls
