from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import HubProcess, base_config, running


@pytest.fixture(scope="session")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HubProcess]:
    """One real hub process with the embedded default config, shared by the suite."""
    tmp: Path = tmp_path_factory.mktemp("hub")
    yield from running(base_config(), tmp)
