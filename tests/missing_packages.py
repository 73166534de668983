"""Run a real process as if some packages were not installed: a `sitecustomize` on PYTHONPATH hides
them from the import system (ModuleNotFoundError on import, None from find_spec), whatever the venv holds."""

from __future__ import annotations

import os
from pathlib import Path

SITECUSTOMIZE = '''
import importlib.machinery
import sys

_HIDDEN = {packages!r}


class _Hide:
    """The path finder, blind to the hidden packages: their import raises ModuleNotFoundError and
    importlib.util.find_spec() answers None, as for a package that is not installed."""

    def __init__(self, finder):
        self.finder = finder

    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in _HIDDEN:
            return None
        return self.finder.find_spec(name, path, target)

    def __getattr__(self, attr):
        return getattr(self.finder, attr)


sys.meta_path[:] = [_Hide(f) if f is importlib.machinery.PathFinder else f for f in sys.meta_path]
'''


def env_without(tmp: Path, *packages: str) -> dict[str, str]:
    """This process's environment, plus a PYTHONPATH entry that hides `packages` (top-level names)."""
    site = tmp / f"without-{'-'.join(packages)}"
    site.mkdir(parents=True, exist_ok=True)
    (site / "sitecustomize.py").write_text(SITECUSTOMIZE.format(packages=set(packages)))
    path = os.pathsep.join(p for p in (str(site), os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, "PYTHONPATH": path}
