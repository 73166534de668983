"""Real-browser plumbing shared by the demo-page tests and `make screenshots`: Debian chromium driven by
Playwright (the pip package only; never `playwright install`), a fake microphone fed from a WAV file,
and an init script that timestamps what the page shows (finals, partials, speech edges, status)."""

from __future__ import annotations

import wave
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tests.support import Clip, load_pcm16

CHROMIUM = "/usr/bin/chromium"
RATE = 16000


@dataclass(frozen=True)
class MicWav:
    """A 16-bit PCM WAV for chromium's fake capture device, and where its speech ends."""

    path: Path
    clip: Clip
    duration_ms: float
    speech_end_ms: float


def speech_end_ms(pcm: np.ndarray, rate: int = RATE, frame_ms: int = 10, rel_db: float = -30.0) -> float:
    """End of the last 10 ms frame whose RMS is within `rel_db` of the loudest frame."""
    n = rate * frame_ms // 1000
    frames = pcm[: len(pcm) // n * n].astype(np.float64).reshape(-1, n)
    rms = np.sqrt((frames**2).mean(axis=1)) + 1e-9
    loud = np.nonzero(20 * np.log10(rms / rms.max()) > rel_db)[0]
    return float((loud[-1] + 1) * frame_ms)


def write_mic_wav(clip: Clip, path: Path, tail_silence_s: float = 1.0) -> MicWav:
    """The clip as 16 kHz mono s16 with `tail_silence_s` of silence appended, so the VAD can endpoint
    before chromium loops the file."""
    pcm = load_pcm16(clip.path)
    end = speech_end_ms(pcm)
    pcm = np.concatenate([pcm, np.zeros(int(tail_silence_s * RATE), np.int16)])
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(pcm.tobytes())
    return MicWav(path, clip, len(pcm) * 1000 / RATE, end)


def chromium_args(mic_wav: Path) -> list[str]:
    return ["--no-sandbox", "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
            f"--use-file-for-fake-audio-capture={mic_wav}", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-gpu", "--disable-quic",
            "--autoplay-policy=no-user-gesture-required"]


def launch(pw: Any, mic_wav: Path) -> Any:
    """A headless Debian chromium whose microphone plays `mic_wav` (looping)."""
    return pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=chromium_args(mic_wav))


def chromium(mic_wav: Path) -> Iterator[Any]:
    """`launch`ed in its own Playwright, for a fixture to `yield from`: closed when the fixture ends."""
    from playwright.sync_api import sync_playwright

    assert Path(CHROMIUM).exists(), "chromium missing: `make test` installs it (apt-get install chromium)"
    with sync_playwright() as pw:
        b = launch(pw, mic_wav)
        yield b
        b.close()


# Timestamps (performance.now(), ms) of what the page shows, in window.__e2e.
INIT_SCRIPT = r"""
(() => {
  const rec = (window.__e2e = { gum: [], finals: [], partials: [], speaking: [], status: [], errors: [] });
  const md = navigator.mediaDevices;
  if (md && md.getUserMedia) {
    const gum = md.getUserMedia.bind(md);
    md.getUserMedia = async (c) => {
      const s = await gum(c);
      rec.gum.push(performance.now()); // chromium's fake device starts its file when capture starts
      return s;
    };
  }
  const watch = () => {
    const $ = (id) => document.getElementById(id);
    new MutationObserver((muts) => {
      const t = performance.now();
      for (const m of muts) for (const n of m.addedNodes) {
        if (!n.classList || !n.classList.contains("final")) continue;
        const lat = n.querySelector(".final-latency");
        rec.finals.push({ t, text: n.querySelector(".final-text").textContent, session_id: n.dataset.sessionId,
          start_ms: Number(n.dataset.startMs), end_ms: Number(n.dataset.endMs),
          hub_latency_ms: lat ? parseInt(lat.textContent, 10) : null });
      }
    }).observe($("finals"), { childList: true });
    new MutationObserver(() => {
      const text = $("partial").textContent.trim();
      if (text) rec.partials.push({ t: performance.now(), text });
    }).observe($("partial"), { subtree: true, childList: true, characterData: true });
    const attr = (id, name, list) =>
      new MutationObserver(() => list.push({ t: performance.now(), v: $(id).getAttribute(name) }))
        .observe($(id), { attributes: true, attributeFilter: [name] });
    attr("speech-indicator", "data-speaking", rec.speaking);
    attr("status", "data-state", rec.status);
    attr("error", "data-code", rec.errors);
  };
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", watch);
  else watch();
})();
"""


def records(page: Any) -> dict[str, Any]:
    return dict(page.evaluate("window.__e2e"))


def open_page(context: Any, base_url: str, query: str = "") -> Any:
    """A page on the hub's demo page with the recorder installed and the provider list loaded."""
    page = context.new_page()
    page.add_init_script(INIT_SCRIPT)
    page.goto(f"{base_url}/{query}")
    page.wait_for_function("document.querySelector('#provider').options.length > 0"
                           " && !document.querySelector('#provider').disabled")
    return page
