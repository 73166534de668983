"""`make screenshots`: the demo page mid-transcription, desktop (1280x800) and phone (390x844).

Starts a hub (embedded default config) on a free loopback port, opens the page in Debian chromium (the
browser set-up of tests/e2e), streams a manifest clip through the file upload, and captures the page once
finals are on screen with the next utterance's partial still open. Writes docs/img/demo-desktop.png and
docs/img/demo-phone.png."""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from playwright.sync_api import sync_playwright  # noqa: E402

from tests.e2e.browser import launch, open_page, write_mic_wav  # noqa: E402
from tests.support import HubProcess, base_config, clip  # noqa: E402

SHOTS = {
    "demo-desktop.png": {"viewport": {"width": 1280, "height": 800}},
    "demo-phone.png": {"viewport": {"width": 390, "height": 844}, "is_mobile": True, "has_touch": True},
}
# Mid-session: a final on screen and the next utterance still a partial (its grey unstable tail shows).
READY = ("document.querySelectorAll('#finals .final').length >= 1"
         " && document.querySelector('#partial').textContent.trim().split(/\\s+/).length >= 3")


def shoot(browser: object, hub: HubProcess, audio: Path, out: Path, options: dict[str, object]) -> None:
    ctx = browser.new_context(color_scheme="light", **options)  # type: ignore[attr-defined]
    try:
        page = open_page(ctx, hub.http, "?transport=ws")
        page.set_input_files("#file-input", str(audio))
        try:
            page.wait_for_function(READY, polling=50, timeout=30_000)
        except Exception:  # a slow machine may finish the utterance first: show the whole transcript
            page.wait_for_function("document.querySelector('#status').dataset.state === 'closed'",
                                   timeout=60_000)
        page.screenshot(path=str(out))
        print(f"wrote {out.relative_to(REPO)}")
    finally:
        ctx.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--clip", default="en_jfk", help="manifest file name prefix (default en_jfk)")
    ap.add_argument("--out", type=Path, default=REPO / "docs" / "img")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    c = clip(args.clip)
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        mic = write_mic_wav(c, tmp / "mic.wav")  # the fake microphone (unused here, same set-up as the tests)
        hub = HubProcess(base_config(), tmp).start()
        try:
            with sync_playwright() as pw:
                browser = launch(pw, mic.path)
                try:
                    for name, options in SHOTS.items():
                        shoot(browser, hub, c.path, args.out / name, options)
                finally:
                    browser.close()
        finally:
            hub.stop()


if __name__ == "__main__":
    main()
