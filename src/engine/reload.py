"""Hot reload (DESIGN §5): watch the config file; on change re-validate it and apply provider settings and
pipeline defaults to NEW sessions without a restart. Live sessions keep the providers they run on.

A bad edit (invalid YAML, an unknown key, an unknown provider type) is logged and the running config
stays. Providers whose block is unchanged are kept as they are (no reload of their model); changed or new
ones are built and loaded before the swap; retired ones are closed once no live session uses them.
Settings bound at start (server, scheduler workers/queue) need a restart: a change there is logged.

Nothing polls: the file is watched through inotify (watchfiles, on its folder, so an editor's
replace-by-rename is seen), SIGHUP asks for a reload too, and a retired provider waits on the store's
state changes (a session ending) before it is closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import signal
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Protocol

from ..core.config import ConfigError, HubConfig, load_config
from ..core.errors import HubError
from ..providers.base import Provider
from ..providers.registry import ProviderSet
from ..store.sessions.selectors import select_live_on_provider, select_session


class _Store(Protocol):
    def select(self, selector: Any = None) -> Any: ...


class _Service(Protocol):
    config: HubConfig
    store: _Store

    @property
    def state(self) -> Any: ...


class ReloadHost(Protocol):
    """What a reload changes (the hub)."""

    config: HubConfig

    @property
    def providers(self) -> ProviderSet: ...

    @property
    def service(self) -> _Service: ...

    async def prewarm_pipeline(self) -> None: ...

    def report_health(self, providers: Iterable[Provider]) -> None: ...

log = logging.getLogger(__name__)


class ConfigReloader:
    debounce_ms = 200

    def __init__(self, hub: ReloadHost, path: Path) -> None:
        self.hub = hub
        self.path = path
        self._digest = self._read_digest()
        self._task: asyncio.Task[None] | None = None
        self._retiring: set[asyncio.Task[None]] = set()
        self._lock = asyncio.Lock()
        self.reloads = 0
        self.rejected = 0
        self._file_server: Any = None  # the file's own `server` section (the CLI may override the running one)
        self._sighup = False  # a SIGHUP handler is installed on the loop

    def _read_digest(self) -> str | None:
        try:
            return hashlib.sha256(self.path.read_bytes()).hexdigest()
        except OSError:
            return None

    async def start(self) -> None:
        try:
            self._file_server = load_config(self.path).server
        except ConfigError:
            self._file_server = None
        self._task = asyncio.create_task(self._watch(), name="config-watch")
        self._sighup = self._on_sighup()
        log.info("watching %s for config changes%s", self.path, " (and SIGHUP)" if self._sighup else "")

    def _on_sighup(self) -> bool:
        """SIGHUP reloads the file too (the operator's way to ask). Only the main thread's loop can take a
        signal (a hub run in a test's thread cannot): False there."""
        loop = asyncio.get_running_loop()
        try:
            loop.add_signal_handler(signal.SIGHUP, self._hangup)
        except (ValueError, RuntimeError, NotImplementedError, AttributeError):
            return False
        return True

    def _hangup(self) -> None:
        log.warning("SIGHUP: reloading %s", self.path)
        t = asyncio.get_running_loop().create_task(self._reload_logged(), name="config-sighup")
        self._retiring.add(t)  # held (and cancelled on close) with the retirements
        t.add_done_callback(self._retiring.discard)

    async def _reload_logged(self) -> None:
        self._digest = self._read_digest()
        try:
            await self.reload()
        except Exception:
            log.exception("config reload failed; the running config stays")

    async def close(self) -> None:
        if self._sighup:
            with contextlib.suppress(ValueError, RuntimeError):
                asyncio.get_running_loop().remove_signal_handler(signal.SIGHUP)
            self._sighup = False
        tasks = [t for t in (self._task, *self._retiring) if t is not None]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _watch(self) -> None:
        from watchfiles import awatch

        name = self.path.name
        # the folder, not the file: editors replace files by rename, which ends a watch on the file itself
        async for _changes in awatch(self.path.parent, debounce=self.debounce_ms, recursive=False,
                                     watch_filter=lambda _c, p: Path(p).name == name):
            digest = self._read_digest()
            if digest is None or digest == self._digest:
                continue
            await self._reload_logged()

    async def reload(self) -> bool:
        """Re-read the file and apply it. False (and the old config stays) when it does not validate."""
        async with self._lock:
            try:
                new = load_config(self.path)
            except ConfigError as e:
                self.rejected += 1
                log.error("config %s rejected, keeping the running config: %s", self.path, e)
                return False
            hub = self.hub
            old = hub.config
            ps = hub.providers
            keep = {n: p for n, p in ps.providers.items()
                    if n in new.providers.instances and new.providers.instances[n] == ps.config.instances.get(n)}
            try:
                providers = ps.instantiate(new.providers, reuse=keep)
            except HubError as e:
                self.rejected += 1
                log.error("config %s rejected, keeping the running config: %s", self.path, e.message)
                return False
            except ConfigError as e:  # a provider option its type does not know
                self.rejected += 1
                log.error("config %s rejected, keeping the running config: %s", self.path, e)
                return False
            fresh = [p for n, p in providers.items() if n not in keep]
            if fresh:
                await ps.load(fresh)
            if self._file_server is not None and new.server != self._file_server:
                log.warning("config: 'server' settings changed; they take effect after a restart")
            self._file_server = new.server
            applied = self._merge(old, new)
            retired = [p for p in ps.providers.values() if p not in providers.values()]
            # the live sessions on each (its name may go on, on a new instance, for sessions started from now)
            users = {p.name: set(select_live_on_provider(hub.service.state, p.name)) for p in retired}
            ps.replace(applied.providers, providers)
            hub.config = applied
            hub.service.config = applied
            if applied.pipeline != old.pipeline:
                await hub.prewarm_pipeline()  # wake word decoders / recordings folder of the new config
            hub.report_health(fresh)  # an unhealthy one is probed by the failover effects
            for p in retired:
                t = asyncio.create_task(self._retire(p, users[p.name]), name=f"retire-{p.name}")
                self._retiring.add(t)
                t.add_done_callback(self._retiring.discard)
            self.reloads += 1
            log.warning("config %s reloaded: default provider %s; new/changed providers: %s; retired: %s",
                        self.path, applied.providers.default, ", ".join(p.name for p in fresh) or "none",
                        ", ".join(p.name for p in retired) or "none")
            return True

    @staticmethod
    def _merge(old: HubConfig, new: HubConfig) -> HubConfig:
        """The new config, less what only a restart can change (those keep their running values)."""
        sched = new.scheduler
        fixed = ("workers", "partial_workers", "max_queue", "max_batch", "max_partial_batch")
        if any(getattr(sched, k) != getattr(old.scheduler, k) for k in fixed):
            log.warning("config: scheduler %s changed; they take effect after a restart", "/".join(fixed))
            sched = sched.model_copy(update={k: getattr(old.scheduler, k) for k in fixed})
        if new.logging != old.logging:
            new.logging.apply_levels()
        merged = new.model_copy(update={"server": old.server, "scheduler": sched})
        merged._source = new.source
        return merged

    def _in_use(self, p: Provider, users: set[str]) -> bool:
        """Any of the sessions that were on `p` when it was retired still is (live, and its record names it)."""
        state = self.hub.service.state
        return any((rec := select_session(state, sid)) is not None and rec.live and rec.provider == p.name
                   for sid in users)

    async def _retire(self, p: Provider, users: set[str]) -> None:
        """Close a provider that a reload removed or replaced, once the last of its sessions (`users`) has
        ended (or moved: each is a change of the store's state, which wakes this check)."""
        changed = asyncio.Event()
        loop = asyncio.get_running_loop()
        sub = self.hub.service.store.select().subscribe(lambda _: loop.call_soon_threadsafe(changed.set))
        try:
            while self._in_use(p, users):
                await changed.wait()
                changed.clear()
        finally:
            sub.dispose()
        try:
            await p.close()
        except Exception:
            log.exception("closing retired provider %s failed", p.name)
