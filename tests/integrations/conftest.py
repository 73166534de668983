"""What the framework-integration tests share: each loads one of examples/*.py as a module and runs it
against the suite's real hub (fixture `hub`, tests/conftest.py) on the same LibriSpeech clip."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from types import ModuleType

import pytest

from tests.support import REPO, Clip, clip


@pytest.fixture
def libri_clip() -> Clip:
    return clip("en_libri_1221-135766")  # 4.8 s, 16-bit PCM WAV


def _load_example(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, REPO / "examples" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture
def load_example() -> Callable[[str], ModuleType]:
    """examples/<name>.py, imported as a module (its `__main__` block does not run)."""
    return _load_example
