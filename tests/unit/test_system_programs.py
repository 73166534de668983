"""Every program outside the venv that the code runs is in PROGRAMS of scripts/bootstrap-test.sh, the one list
the bootstrap installs from (DESIGN §7). `make test` once failed on a fresh machine because a test ran sox and the
bootstrap did not install it; these tests find every such program by reading the code, so the next one fails
here, by name, instead of somewhere else on a machine that happens to lack it."""

from __future__ import annotations

import ast
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import REPO

LIST = REPO / "scripts" / "bootstrap-test.sh"
#: where the code that runs programs lives: the tests, the bench, the scripts, the hub, deploy helpers, examples
SCANNED = ("tests", "bench", "scripts", "src", "deploy", "examples")
#: calls whose first argument is the program (a list/tuple of arguments, or one string for the shell forms)
RUNNERS = {"run", "Popen", "call", "check_call", "check_output", "create_subprocess_exec", "create_subprocess_shell",
           "system", "execv", "execvp", "execl", "execlp", "spawnv", "spawnvp"}
#: the interpreter itself, always there
INTERPRETER = {"python", "python3", "sys.executable"}


def listed() -> dict[str, str]:
    """program -> Debian package, from the bootstrap's PROGRAMS array."""
    text = LIST.read_text()
    body = text[text.index("PROGRAMS=(") + len("PROGRAMS=("):]
    body = body[:body.index("\n)")]
    out: dict[str, str] = {}
    for line in body.splitlines():
        entry = line.split("#", 1)[0].strip()
        if entry:
            program, package = entry.split(":", 1)
            out[program] = package
    return out


def _name(node: ast.expr) -> str | None:
    """The program a literal names: a bare name, or the last part of an absolute path."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.strip():
        word = node.value.split()[0]
        return Path(word).name if "/" in word else word
    return None


#: modules whose RUNNERS start processes (`subprocess.run`, `asyncio.create_subprocess_exec`, `os.execvp`)
MODULES = {"subprocess", "asyncio", "os"}


def _func(call: ast.Call) -> str:
    """The called name: `which`, or a runner called on a process module (not any `.call(...)`, say Socket.IO's)."""
    f = call.func
    if isinstance(f, ast.Attribute):
        if f.attr == "which" or (isinstance(f.value, ast.Name) and f.value.id in MODULES):
            return f.attr
        return ""
    return f.id if isinstance(f, ast.Name) and f.id in {"which", "Popen", "check_output", "check_call"} else ""


def _interpreter(node: ast.expr) -> bool:
    """`sys.executable`: the interpreter, as an element of a command line."""
    return isinstance(node, ast.Attribute) and node.attr == "executable" and isinstance(node.value, ast.Name) \
        and node.value.id == "sys"


def programs_in(source: str) -> Iterator[str]:
    """Programs a module runs or looks for: `shutil.which("x")`, `"/usr/bin/x"` constants, and the literal
    first argument of a subprocess/exec call."""
    tree = ast.parse(source)
    for node in ast.walk(tree):
        if isinstance(node, ast.List | ast.Tuple) and len(node.elts) > 1 and any(map(_interpreter, node.elts[1:])):
            # a command line that wraps the interpreter, built here and run elsewhere: `["taskset", "-c", "0",
            # sys.executable, "-m", ...]` (bench_cluster's hub command)
            if (name := _name(node.elts[0])) is not None:
                yield name
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            for prefix in ("/usr/bin/", "/usr/sbin/", "/usr/local/bin/", "/usr/local/sbin/", "/bin/"):
                if node.value.startswith(prefix) and " " not in node.value and len(node.value) > len(prefix):
                    yield Path(node.value).name
        if not isinstance(node, ast.Call) or not node.args:
            continue
        func, first = _func(node), node.args[0]
        if func == "which":
            if (name := _name(first)) is not None:
                yield name
        elif func in RUNNERS:
            head = first.elts[0] if isinstance(first, ast.List | ast.Tuple) and first.elts else first
            if (name := _name(head)) is not None:
                yield name


def called() -> dict[str, set[str]]:
    """program -> the files that run it, over the whole repository."""
    found: dict[str, set[str]] = {}
    for top in SCANNED:
        for path in sorted((REPO / top).rglob("*.py")):
            if ".venv" in path.parts:
                continue
            for program in programs_in(path.read_text()):
                found.setdefault(program, set()).add(str(path.relative_to(REPO)))
    return {p: files for p, files in found.items() if p not in INTERPRETER}


def test_the_scan_finds_what_it_must() -> None:
    """The scanner itself: every form of running a program the repository uses is seen."""
    src = ('import shutil, subprocess, asyncio\n'
           'subprocess.run(["sox", "a.wav"])\n'
           'subprocess.Popen(("redis-server", "--port", "1"))\n'
           'shutil.which("espeak-ng")\n'
           'CHROMIUM = "/usr/bin/chromium"\n'
           'asyncio.create_subprocess_exec("nginx", "-t")\n'
           'subprocess.run("ffmpeg -i x", shell=True)\n'
           'subprocess.run([sys.executable, "-m", "x"])\n'
           'def hub(core): return ["taskset", "-c", str(core), sys.executable, "-m", "asrhub.cli"]\n')
    assert sorted(programs_in(src)) == ["chromium", "espeak-ng", "ffmpeg", "nginx", "redis-server", "sox", "taskset"]


def test_every_program_the_code_runs_is_in_the_bootstrap_list() -> None:
    known = listed()
    missing = {p: sorted(files) for p, files in called().items() if p not in known}
    assert not missing, (f"programs run by the code but not in {LIST.relative_to(REPO)} (add each with its "
                         f"Debian package to PROGRAMS, so the bootstrap installs it): {missing}")


def test_the_bootstrap_installs_from_the_list() -> None:
    """The bootstrap's apt step reads PROGRAMS (rather than a second, hand-kept list) and finds them all."""
    text = LIST.read_text()
    assert 'for entry in "${PROGRAMS[@]}"' in text and "apt-get install" in text
    assert set(listed()) >= {"chromium", "espeak-ng", "sox", "redis-server", "redis-sentinel", "nginx"}


@pytest.mark.parametrize("program", sorted(listed()))
def test_every_listed_program_is_installed(program: str) -> None:
    """After the bootstrap, each listed program is on this machine: a fresh machine gets them from the
    bootstrap, not from someone's hand."""
    found = shutil.which(program) or next((p for p in (f"/usr/sbin/{program}",) if Path(p).exists()), None)
    assert found, f"{program} (Debian package {listed()[program]}) is not installed: run scripts/bootstrap-test.sh"
