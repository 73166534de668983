"""Build step for the wheel (all metadata is in pyproject.toml).

`build_py` also ships what the hub needs besides its Python modules, so an installed wheel runs with no
checkout: the files listed in asrhub.core.resources.SHIPPED go to `asrhub/_data/` (default config, the
.proto, the demo page with its vendored Socket.IO client), and the gRPC stubs compiled from the .proto go
to `asrhub/wire/gen/` (grpcio-tools is a build requirement). An editable install skips both: it reads
the checkout, and compiles the stubs into a user cache folder on first use (asrhub.wire.grpc_gen).
"""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path
from typing import Any

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
#: Inside the demo page folder, what is not shipped (development files only).
FRONTEND_SKIP = ("node_modules", "package-lock.json")


def _load(rel: str) -> Any:
    spec = importlib.util.spec_from_file_location(Path(rel).stem, ROOT / rel)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


class BuildPyWithResources(build_py):
    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return
        pkg = Path(self.build_lib) / "asrhub"
        for rel in _load("src/core/resources.py").SHIPPED:
            src, dst = ROOT / rel, pkg / "_data" / rel
            if dst.exists():
                shutil.rmtree(dst) if dst.is_dir() else dst.unlink()
            dst.parent.mkdir(parents=True, exist_ok=True)
            if src.is_dir():
                shutil.copytree(src, dst, ignore=shutil.ignore_patterns(*FRONTEND_SKIP))
            else:
                shutil.copy2(src, dst)
        gen = pkg / "wire" / "gen"
        shutil.rmtree(gen, ignore_errors=True)
        _load("src/wire/grpc_protoc.py").compile_proto(ROOT / "protos", gen)


setup(cmdclass={"build_py": BuildPyWithResources})
