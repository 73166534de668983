"""Issue 20: SIGHUP reloads the config file too, even when the file's bytes did not change (which the
watcher skips); the file watch and the signal share one reload."""

from __future__ import annotations

import signal
from collections.abc import Iterator

import httpx
import pytest

from tests.providers.test_reload import ONE
from tests.support import HubProcess, base_config, running, until_changed


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HubProcess]:
    yield from running(base_config(providers=ONE), tmp_path_factory.mktemp("sighup"))


def test_sighup_reloads_an_unchanged_file(hub: HubProcess) -> None:
    assert hub.proc is not None and hub.config is not None
    before = hub.log.read_text()
    assert "(and SIGHUP)" in before  # the handler is installed on the serving loop
    reloads = before.count("reloaded: default provider")
    hub.proc.send_signal(signal.SIGHUP)
    until_changed(hub.log, lambda: hub.log.read_text().count("reloaded: default provider") > reloads,
                  timeout=30, what="the reload SIGHUP asks for", proc=hub.proc)
    assert "SIGHUP: reloading" in hub.log.read_text()
    assert hub.alive()  # the signal's default action (exit) is not taken
    assert httpx.get(hub.http + "/readyz", timeout=5).status_code == 200


def test_sighup_with_a_bad_file_keeps_the_running_config(hub: HubProcess) -> None:
    assert hub.proc is not None and hub.config is not None
    rejected = hub.log.read_text().count("rejected, keeping the running config")
    hub.config.write_text(base_config(providers=ONE) + "\nproviders:\n  bogus_key: 1\n")
    hub.proc.send_signal(signal.SIGHUP)
    until_changed(hub.log, lambda: hub.log.read_text().count("rejected, keeping the running config") > rejected,
                  timeout=30, what="the rejection", proc=hub.proc)
    assert hub.alive()
    names = {r["name"] for r in httpx.get(hub.http + "/v1/providers", timeout=5).json()}
    assert names == {"faster_whisper"}
