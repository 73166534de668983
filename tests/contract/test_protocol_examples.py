"""docs/PROTOCOL.md's examples, run as written against the real hub: Python ones as scripts, JavaScript
ones in a real browser (headless Chromium via Playwright)."""

from __future__ import annotations

import asyncio
import base64
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.support import REPO, HubProcess, clip, wer

DOC = REPO / "docs" / "PROTOCOL.md"
CLIP = clip("en_libri_1221")  # a 16 kHz mono 16-bit WAV
FRONTEND = REPO / "frontend" / "realtime-streaming"


def examples() -> dict[str, tuple[str, str]]:
    """name -> (language, code) for every fenced block announced by `<!-- example: name -->`."""
    text = DOC.read_text()
    found = re.findall(r"<!-- example: ([\w-]+) -->\n```(\w+)\n(.*?)\n```", text, flags=re.S)
    return {name: (lang, code) for name, lang, code in found}


EXAMPLES = examples()
PY = sorted(n for n, (lang, _) in EXAMPLES.items() if lang == "python")
JS = sorted(n for n, (lang, _) in EXAMPLES.items() if lang == "javascript")


def test_every_transport_has_its_examples() -> None:
    assert set(PY) == {"py-ws", "py-sse", "py-sio", "py-grpc", "py-openai", "py-openai-stream", "py-realtime",
                       "py-client", "py-deepgram"}
    assert set(JS) == {"js-ws", "js-sse", "js-sio"}


@pytest.fixture(scope="module")
def python_runs(hub: HubProcess, tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[int, str, str]]:
    tmp = tmp_path_factory.mktemp("examples")
    env = {**os.environ, "ASRHUB_URL": hub.http, "ASRHUB_GRPC": f"127.0.0.1:{hub.grpc_port}"}

    async def run(name: str) -> tuple[str, tuple[int, str, str]]:
        script = tmp / f"{name}.py"
        script.write_text(EXAMPLES[name][1])
        proc = await asyncio.create_subprocess_exec(sys.executable, str(script), str(CLIP.path), env=env, cwd=tmp,
                                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        out, err = await asyncio.wait_for(proc.communicate(), 180)
        return name, (proc.returncode or 0, out.decode(), err.decode())

    async def all_runs() -> dict[str, tuple[int, str, str]]:
        # one after another, as a user runs an example: nine at once (most push audio as fast as they can)
        # made the shared hub's admission refuse whichever came late on a loaded machine (finals trailing
        # audio by more than limits.admission_lag_s), which is the lag gate working, not an example failing
        return dict([await run(n) for n in PY])

    return asyncio.run(all_runs())


@pytest.mark.parametrize("name", PY)
def test_python_example(python_runs: dict[str, tuple[int, str, str]], name: str) -> None:
    rc, out, err = python_runs[name]
    assert rc == 0, err[-2000:]
    assert "error:" not in err, err
    assert wer([CLIP.transcript], [out]) < 0.3, (out, err)


# A start the hub refuses (a language that is no language tag), spliced into each streaming example's own
# start: the example must say so and stop at once, not wait for a session that never comes.
BAD_LANGUAGE = "no such language"
REFUSED_START = {
    "py-ws": ('{"type": "start", ', f'{{"type": "start", "language": "{BAD_LANGUAGE}", '),
    "py-sse": ('json={\n            "audio"', f'json={{"language": "{BAD_LANGUAGE}",\n            "audio"'),
    "py-sio": ('call("start", {"audio"', f'call("start", {{"language": "{BAD_LANGUAGE}", "audio"'),
    "py-grpc": ("pb.StartSession(audio=audio,", f'pb.StartSession(language="{BAD_LANGUAGE}", audio=audio,'),
    **{name: ('audio: { encoding: "wav" }', f'language: "{BAD_LANGUAGE}", audio: {{ encoding: "wav" }}')
       for name in JS},
}
REFUSED_WITHIN_S = 20  # an answer takes milliseconds; this bounds a loaded machine, and a hang


def refused_start(name: str) -> str:
    """Example `name` with a start the hub refuses."""
    anchor, spliced = REFUSED_START[name]
    code = EXAMPLES[name][1]
    assert code.count(anchor) == 1, f"{name}: its start is no longer where this test puts the bad language"
    return code.replace(anchor, spliced)


@pytest.mark.parametrize("name", sorted(n for n in REFUSED_START if n in PY))
def test_python_example_stops_on_a_refused_start(hub: HubProcess, tmp_path: Path, name: str) -> None:
    script = tmp_path / f"{name}.py"
    script.write_text(refused_start(name))
    env = {**os.environ, "ASRHUB_URL": hub.http, "ASRHUB_GRPC": f"127.0.0.1:{hub.grpc_port}"}
    try:
        proc = subprocess.run([sys.executable, str(script), str(CLIP.path)], env=env, cwd=tmp_path,
                              capture_output=True, text=True, timeout=REFUSED_WITHIN_S)
    except subprocess.TimeoutExpired as e:
        raise AssertionError(f"{name} still runs {REFUSED_WITHIN_S} s after a refused start: {e.stderr!r}") from None
    assert proc.returncode != 0, (proc.stdout, proc.stderr)
    assert BAD_LANGUAGE in proc.stderr, proc.stderr  # the hub's reason, shown


def _socketio_client_js() -> Path:
    dist = FRONTEND / "vendor" / "socket.io.min.js"  # vendored: no npm
    assert dist.is_file(), dist
    return dist


@pytest.fixture(scope="module")
def browser_runs(hub: HubProcess) -> dict[str, Any]:
    from playwright.sync_api import sync_playwright

    wav = base64.b64encode(CLIP.path.read_bytes()).decode()
    sio_js = _socketio_client_js()
    chromium = shutil.which("chromium")
    assert chromium, "Debian chromium is installed by scripts/bootstrap-test.sh (PROGRAMS)"
    out: dict[str, Any] = {}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        try:
            page = browser.new_page()
            page.set_default_timeout(120_000)
            logs: list[str] = []
            page.on("console", lambda m: logs.append(f"{m.type}: {m.text}"))
            page.goto(hub.http + "/healthz")
            page.add_script_tag(path=str(sio_js))
            runs = [(name, EXAMPLES[name][1], 90) for name in JS]
            runs += [(f"{name}-refused", refused_start(name), REFUSED_WITHIN_S) for name in JS]
            for name, code, within_s in runs:
                fn = re.search(r"async function (\w+)", code)
                assert fn, name
                script = ("async ([hub, b64]) => {\n" + code + "\n"
                          "const wav = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0)).buffer;\n"
                          "const late = new Promise((_, no) => setTimeout(() => no(new Error("
                          f"'no answer in {within_s} s')), {within_s * 1000}));\n"
                          f"return await Promise.race([{fn.group(1)}(hub, wav), late]);\n}}")
                try:
                    out[name] = page.evaluate(script, [hub.http, wav])
                except Exception as e:  # reported by the test of that example
                    out[name] = e
            out["_console"] = logs
        finally:
            browser.close()
    return out


@pytest.mark.parametrize("name", JS)
def test_javascript_example_in_a_browser(browser_runs: dict[str, Any], name: str) -> None:
    text = browser_runs[name]
    errors = [line for line in browser_runs["_console"] if line.startswith("error")]
    assert not isinstance(text, Exception), f"{text}\n{errors}"
    assert wer([CLIP.transcript], [text]) < 0.3, (text, errors)


@pytest.mark.parametrize("name", JS)
def test_javascript_example_stops_on_a_refused_start(browser_runs: dict[str, Any], name: str) -> None:
    """The example's promise is rejected with the hub's reason, not left waiting."""
    got = browser_runs[f"{name}-refused"]
    assert isinstance(got, Exception), got
    assert "no answer" not in str(got) and BAD_LANGUAGE in str(got), got
