"""Container images cannot be built here (no image registry), so these checks keep the Dockerfiles from
drifting away from what `make test` installs and runs: the same install script, the files the wheel
build needs, the same default config, a health check on /readyz, a non-root user, a lock that pins the
project's dependencies, and a Grafana dashboard that only uses metrics the hub exports."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tomllib

import pytest
import yaml

from asrhub.core.config import load_config
from asrhub.core.resources import SHIPPED
from tests.support import REPO

DOCKERFILES = [REPO / "Dockerfile", REPO / "deploy" / "Dockerfile.gpu"]
INSTALL = "scripts/install.sh"


def _lines(path: str) -> list[str]:
    text = (REPO / path).read_text()
    return [ln for ln in text.replace("\\\n", " ").splitlines() if ln.strip() and not ln.lstrip().startswith("#")]


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_dockerfile_uses_the_shared_install_script(dockerfile) -> None:  # type: ignore[no-untyped-def]
    lines = _lines(str(dockerfile.relative_to(REPO)))
    runs = [ln for ln in lines if ln.startswith("RUN ")]
    assert any(re.search(rf"bash {INSTALL} /opt/venv/bin/python \S+ wheel\b", r) for r in runs), runs
    assert any("scripts/container_config.py config/config.yaml deploy/container.yaml" in r for r in runs), runs
    for r in runs:  # no install step of its own besides upgrading pip
        for cmd in re.findall(r"pip install[^&]*", r):
            assert "--upgrade pip" in cmd, cmd
    copied = " ".join(ln for ln in lines if ln.startswith("COPY "))
    for needed in ("pyproject.toml", "setup.py", "README.md", "LICENSE", "requirements.lock", INSTALL,
                   "scripts/container_config.py", "deploy/container.yaml",
                   *sorted({rel.split("/")[0] for rel in SHIPPED}), "src"):
        assert needed in copied, f"{dockerfile.name} does not COPY {needed}"
    text = " ".join(lines)
    assert re.search(r"^USER (?!root)\w+", "\n".join(lines), re.M), "the image must run as a non-root user"
    assert "HEALTHCHECK" in text and "/readyz" in text.split("HEALTHCHECK", 1)[1]
    assert "ASRHUB_CONFIG=/etc/asrhub/config.yaml" in text
    cfg = yaml.safe_load(_container_config())
    expose = next(ln for ln in lines if ln.startswith("EXPOSE ")).split()[1:]
    assert expose == [str(cfg["server"]["port"]), str(cfg["server"]["grpc_port"])]
    assert f"127.0.0.1:{cfg['server']['port']}/readyz" in text
    assert "3.11" in text  # the Python the lock and `make test` use (requires-python below)


def test_local_installs_use_the_same_script() -> None:
    for path in ("scripts/bootstrap-test.sh", "Makefile"):
        text = (REPO / path).read_text()
        assert INSTALL in text, path
        own = [ln for ln in text.splitlines() if re.search(r"pip\"? install", ln) and "--upgrade pip" not in ln]
        assert not own, f"{path} installs on its own: {own}"
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert pyproject["project"]["requires-python"] == ">=3.11"


def _container_config() -> str:
    """What the image build writes to /etc/asrhub/config.yaml."""
    r = subprocess.run([sys.executable, str(REPO / "scripts" / "container_config.py"), "config/config.yaml",
                        "deploy/container.yaml"], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return r.stdout


def test_container_config_is_the_default_plus_the_container_changes(tmp_path) -> None:  # type: ignore[no-untyped-def]
    default = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    text = _container_config()
    container = yaml.safe_load(text)
    for section in ("pipeline", "providers", "scheduler"):
        assert container.get(section) == default.get(section), section
    assert container["server"]["port"] == default["server"]["port"]  # merged, not replaced
    (tmp_path / "c.yaml").write_text(text)
    cfg = load_config(tmp_path / "c.yaml", env={"ASRHUB_KEY": "k"})
    assert cfg.server.host == "0.0.0.0" and cfg.server.auth.api_keys[0].key == "k" and cfg.logging.json_format
    with pytest.raises(Exception, match="ASRHUB_KEY"):
        load_config(tmp_path / "c.yaml", env={})


def test_lock_pins_every_dependency() -> None:
    pins = {ln.split("==")[0].lower().replace("_", "-") for ln in (REPO / "requirements.lock").read_text().splitlines()
            if "==" in ln and not ln.startswith("#")}
    deps = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    for dep in deps:
        name = re.split(r"[\[<>=!~; ]", dep, maxsplit=1)[0].lower().replace("_", "-")
        assert name in pins, f"requirements.lock does not pin {name}: run bash scripts/lock.sh"


def test_dashboard_uses_exported_metrics_only() -> None:
    dash = json.loads((REPO / "deploy" / "grafana" / "asrhub-dashboard.json").read_text())
    exprs = [t["expr"] for p in dash["panels"] for t in p["targets"]]
    used = {re.sub(r"_(bucket|count|sum)$", "", m) for e in exprs for m in re.findall(r"\b(asrhub_\w+)", e)}
    source = (REPO / "src" / "engine" / "metrics.py").read_text()
    exported = set(re.findall(r'"(asrhub_\w+)"', source))
    exported |= {m + "_total" for m in exported}
    assert used and used <= exported, sorted(used - exported)
    assert "from_" not in json.dumps(dash)


def _between(path: str, start: str, end: str) -> str:
    text = (REPO / path).read_text()
    assert start in text, f"{path} has no '{start}'"
    return text.split(start, 1)[1].split(end, 1)[0]


#: What a pip user reads: README's install block ("Without a checkout" up to the next topic) and
#: OPERATIONS' "## Install" section.
INSTALL_DOCS = {"README.md": ("Without a checkout", "\nMore than one machine"),
                "docs/OPERATIONS.md": ("\n## Install\n", "\n## ")}


@pytest.mark.parametrize("doc", sorted(INSTALL_DOCS))
def test_install_docs_say_what_a_pip_user_needs(doc: str) -> None:
    """A user installing the package (not `make run`) gets from these sections alone: every extra they name
    exists; the wheel build command and how to add an extra to the wheel file (the package is not on
    PyPI, so `pip install 'asrhub[X]'` finds nothing); the CPU torch pin scripts/install.sh installs before
    the extras that pull torch (without it pip resolves a multi-GB CUDA build); and the `--no-deps` model
    packages of the Silero VAD and the turn model, which no extra can bring."""
    section = _between(doc, *INSTALL_DOCS[doc])
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    extras = set(pyproject["project"]["optional-dependencies"])
    named = set(re.findall(r"(?:\.|asrhub|\.whl)\[([\w,-]+)\]", (REPO / doc).read_text()))
    assert named and {e for n in named for e in n.split(",")} <= extras, named - extras
    script = (REPO / INSTALL).read_text()
    torch = re.search(r'"(torch==[\d.]+)"', script)
    assert torch and f"pip install {torch.group(1)}" in section, f"{doc}: say `pip install {torch and torch.group(1)}` first"
    assert "openai-whisper" in section and "funasr" in section
    assert "pip wheel --no-deps -w dist ." in section, doc
    wheel = f"dist/asrhub-{pyproject['project']['version']}-py3-none-any.whl"
    assert f"{wheel}[" in section, f"{doc}: how to add an extra to {wheel}"
    for pkg in re.findall(r"--no-deps ([\w-]+==[\d.]+)", script):
        assert f"--no-deps {pkg}" in section, f"{doc}: {pkg}"
