"""Hub: scheduler + providers + session service, started and stopped together."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING

from .core.auth import Authenticator
from .core.config import HubConfig
from .engine.metrics import HubMetrics
from .engine.provider_check import warn_unavailable
from .engine.reload import ConfigReloader
from .engine.scheduler import Scheduler
from .engine.service import SessionService
from .operators.requirements import OperatorUnavailable
from .providers.base import Provider
from .providers.registry import ProviderSet
from .store.hub import actions as HA
from .store.hub.selectors import select_ready

if TYPE_CHECKING:
    from .cluster.node import ClusterNode

log = logging.getLogger(__name__)


class Hub:
    def __init__(self, config: HubConfig) -> None:
        self.config = config
        sc = config.scheduler
        self.scheduler = Scheduler(sc.workers, sc.max_queue, sc.max_batch, sc.max_partial_batch, sc.partial_workers)
        self.providers = ProviderSet(config.providers, self.scheduler)
        self.auth = Authenticator(config.server)
        self.metrics = HubMetrics()
        self.service = SessionService(config, self.providers, self.metrics)
        self.metrics.bind(self)
        self.reloader = ConfigReloader(self, config.source) if config.source and config.server.watch_config else None
        self.cluster: ClusterNode | None = None
        #: operators the configured pipeline needs that could not load (/readyz answers 503 meanwhile)
        self.operators_unavailable: list[OperatorUnavailable] = []
        if config.cluster.redis_url:  # DESIGN §8; empty: one node, no Redis
            from .cluster.node import ClusterNode

            self.cluster = ClusterNode(config, self.service)
            self.service.cluster = self.cluster

    @property
    def ready(self) -> bool:
        return select_ready(self.service.state)

    async def start(self) -> None:
        await self.scheduler.start()
        await self.providers.load()
        self.report_health(self.providers.providers.values())
        await self.prewarm_pipeline()
        await self.service.start()
        if self.cluster is not None:
            await self.cluster.start()
        if self.reloader is not None:
            await self.reloader.start()
        self.service.dispatch(HA.ready_changed(HA.Flag(True)))

    def report_health(self, providers: Iterable[Provider]) -> None:
        """Load results into the store (at start and after a reload), then a WARNING with the fix for a
        default or routed provider that is unavailable (/readyz answers 503 meanwhile)."""
        self.service.report_health(providers)
        warn_unavailable(self.providers)

    async def prewarm_pipeline(self) -> None:
        """Load what the configured pipeline needs off the loop: wake word decoders (~0.4 s each), the
        recordings folder index, the Silero model. A WARNING with the fix for each operator the
        pipeline needs that cannot load (/readyz answers 503 meanwhile)."""
        from .operators.pipeline import prewarm_pipeline

        self.operators_unavailable = await asyncio.to_thread(prewarm_pipeline, self.config.pipeline)
        for u in self.operators_unavailable:
            log.warning("pipeline: %s. /readyz answers 503 until this is fixed: %s", u.describe(), u.fix)

    async def drain(self) -> None:
        """SIGTERM: stop admitting (readyz false), finalise open utterances, end sessions."""
        self.service.dispatch(HA.draining_started(HA.Flag(True)))
        await self.service.drain(self.config.server.shutdown_grace_s)

    async def stop(self) -> None:
        self.service.dispatch(HA.draining_started(HA.Flag(True)))
        if self.reloader is not None:
            await self.reloader.close()
        await self.service.close()
        if self.cluster is not None:
            await self.cluster.close()
        await self.providers.close()
        await self.scheduler.stop()
