"""The generated gRPC modules, as `asrhub.wire.gen.asrhub.v1.{asrhub_pb2,asrhub_pb2_grpc}`.

An installed wheel ships them (setup.py compiles the .proto at build time), so `load()` just imports
them. A checkout or an editable install has none: `load()` compiles the .proto once into a user cache
folder (`$XDG_CACHE_HOME/asrhub/grpc/<hash>`, else `~/.cache/...`, else the temp folder), keyed by the
.proto's content and the grpcio-tools version, under a file lock (several processes may get there
first), and serves that folder as `asrhub.wire.gen`. Nothing is ever written into the package folder.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib
import importlib.util
import os
import shutil
import sys
import tempfile
import types
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

from ..core.resources import is_packaged, resource
from .grpc_protoc import OUTPUTS, compile_proto

HERE = Path(__file__).resolve().parent
SHIPPED = HERE / "gen"  # present in a wheel only
GEN_PACKAGE = __package__ + ".gen"  # asrhub.wire.gen
PACKAGE = GEN_PACKAGE + ".asrhub.v1"
PROTO_ROOT = resource("protos")
PROTO = PROTO_ROOT / "asrhub" / "v1" / "asrhub.proto"

_loaded: tuple[ModuleType, ModuleType] | None = None


def _shipped_ok() -> bool:
    """Only a wheel's stubs are trusted (a checkout may hold a stale gen/ left by older versions)."""
    if not is_packaged():
        return False
    out = SHIPPED / "asrhub" / "v1"
    return all((out / name).exists() for name in OUTPUTS)


def cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    for root in (Path(base), Path(tempfile.gettempdir()) / f"asrhub-{os.getuid()}"):
        try:
            (root / "asrhub" / "grpc").mkdir(parents=True, exist_ok=True)
            if os.access(root / "asrhub" / "grpc", os.W_OK):
                return root / "asrhub" / "grpc"
        except OSError:
            continue
    raise RuntimeError("no writable cache folder for the generated gRPC code (set XDG_CACHE_HOME)")


def _key() -> str:
    from importlib.metadata import version

    h = hashlib.sha256(PROTO.read_bytes())
    h.update(version("grpcio-tools").encode())
    return h.hexdigest()[:16]


@contextlib.contextmanager
def _locked(folder: Path) -> Iterator[None]:
    with open(folder / ".lock", "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def ensure_cached() -> Path:
    """Compile into the cache when that key is not there yet; the folder to serve as asrhub.wire.gen."""
    root = cache_root()
    target = root / _key()
    if (target / "asrhub" / "v1" / OUTPUTS[-1]).exists():
        return target
    with _locked(root):
        if not (target / "asrhub" / "v1" / OUTPUTS[-1]).exists():
            tmp = Path(tempfile.mkdtemp(prefix=".gen-", dir=root))
            try:
                compile_proto(PROTO_ROOT, tmp)
                os.replace(tmp, target)
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
    return target


def _serve_from(folder: Path) -> None:
    """Make `asrhub.wire.gen` a package whose modules are read from `folder`."""
    if GEN_PACKAGE in sys.modules:
        return
    spec = importlib.util.spec_from_loader(GEN_PACKAGE, loader=None, is_package=True)
    assert spec is not None
    mod = types.ModuleType(GEN_PACKAGE)
    mod.__spec__ = spec
    mod.__path__ = [str(folder)]
    mod.__file__ = None
    sys.modules[GEN_PACKAGE] = mod
    importlib.invalidate_caches()


def load() -> tuple[ModuleType, ModuleType]:
    """(asrhub_pb2, asrhub_pb2_grpc): the shipped stubs, else ones compiled into the user cache."""
    global _loaded
    if _loaded is None:
        if not _shipped_ok():
            _serve_from(ensure_cached())
        _loaded = (importlib.import_module(PACKAGE + ".asrhub_pb2"),
                   importlib.import_module(PACKAGE + ".asrhub_pb2_grpc"))
    return _loaded
