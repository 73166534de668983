"""Prometheus metrics, one registry per hub (no import-time globals).

Control-plane facts (finals, errors, switches, session ends) are counted by a store effect that sees
their actions; data-plane counters (audio in, partials) are bumped by the service directly; gauges
(sessions by state/transport, queue depth, provider speed) are read from live objects at scrape time.
HTTP and gRPC request counters/latencies are recorded by the transport middleware and interceptor
(api/http_metrics.py, api/grpc_metrics.py). The registry also carries the standard process_*,
python_* and python_gc_* collectors and `asrhub_build_info`. Names follow Prometheus conventions:
counters end in `_total` (prometheus_client appends it), durations are in `_seconds`.

The same effect writes one structured log line per session when it ends (logger `asrhub.sessions`,
fields: session_id, key_id, transport, provider, audio_s, duration_s, utterances, finals, reason).
"""

from __future__ import annotations

import logging
import platform
from collections.abc import Callable, Iterator
from typing import Any, Protocol

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.gc_collector import GCCollector
from pystorex import Action, create_effect
from reactivex import Observable
from reactivex import operators as ops

from ..core.events import ErrorEvent, SessionStats, TranscriptFinal
from ..core.version import VERSION as __version__
from ..store.providers.selectors import select_available
from ..store.sessions import actions as A
from ..store.sessions.selectors import select_counts_by_state, select_counts_by_transport, select_session


class _Service(Protocol):
    @property
    def state(self) -> Any: ...

    def max_pending_lag(self) -> float: ...


class _Scheduler(Protocol):
    dropped_partials: int

    @property
    def queue_depth(self) -> int: ...

    @property
    def running(self) -> int: ...


class _Providers(Protocol):
    @property
    def providers(self) -> dict[str, Any]: ...


class MetricsSource(Protocol):
    """What the live gauges read (the hub)."""

    @property
    def service(self) -> _Service: ...

    @property
    def scheduler(self) -> _Scheduler: ...

    @property
    def providers(self) -> _Providers: ...

LATENCY_BUCKETS = (0.05, 0.1, 0.2, 0.3, 0.45, 0.6, 0.8, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0)
#: Request durations: short REST calls up to long streaming sessions (WebSocket, gRPC streams, SSE).
REQUEST_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0)
session_log = logging.getLogger("asrhub.sessions")


class HubMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.audio_seconds = Counter("asrhub_audio_seconds", "Audio received, seconds at the hub rate",
                                     ["transport"], registry=r)
        self.sessions_started = Counter("asrhub_sessions_started", "Sessions started", ["transport"], registry=r)
        self.sessions_ended = Counter("asrhub_sessions_ended", "Sessions ended", ["reason"], registry=r)
        self.sessions_refused = Counter("asrhub_sessions_refused", "Sessions refused at start (too_many_sessions)",
                                        ["reason"], registry=r)  # sessions | key_sessions | lag
        self.finals = Counter("asrhub_finals", "Final transcripts", ["provider"], registry=r)
        self.partials = Counter("asrhub_partials", "Partial transcripts", ["provider"], registry=r)
        self.errors = Counter("asrhub_errors", "Errors sent to clients", ["code"], registry=r)
        self.failovers = Counter("asrhub_failovers", "Sessions moved to a fallback provider",
                                 labelnames=("from", "to"), registry=r)
        self.final_latency = Histogram("asrhub_final_latency_seconds", "End of utterance audio -> final",
                                       ["provider"], buckets=LATENCY_BUCKETS, registry=r)
        self.first_partial = Histogram("asrhub_first_partial_seconds", "Speech start -> first partial",
                                       ["provider"], buckets=LATENCY_BUCKETS, registry=r)
        self.lag = Histogram("asrhub_session_lag_seconds", "How far a session's results trail its audio, at finals",
                             buckets=LATENCY_BUCKETS, registry=r)
        self.http_requests = Counter("asrhub_http_requests", "HTTP requests by route template, method, status",
                                     ["route", "method", "status"], registry=r)
        self.http_latency = Histogram("asrhub_http_request_duration_seconds",
                                      "HTTP request duration (until the response ends) by route template",
                                      ["route", "method"], buckets=REQUEST_BUCKETS, registry=r)
        self.grpc_requests = Counter("asrhub_grpc_requests", "gRPC calls by method and status code",
                                     ["method", "code"], registry=r)
        self.grpc_latency = Histogram("asrhub_grpc_request_duration_seconds", "gRPC call duration by method",
                                      ["method"], buckets=REQUEST_BUCKETS, registry=r)
        self.build_info = Gauge("asrhub_build_info", "Always 1; the labels say which build is running",
                                ["version", "python"], registry=r)
        self.build_info.labels(__version__, platform.python_version()).set(1)
        ProcessCollector(registry=r)
        PlatformCollector(registry=r)
        GCCollector(registry=r)
        self._hub: MetricsSource | None = None

    def bind(self, hub: MetricsSource) -> None:
        self._hub = hub
        admission = getattr(hub.service, "admission", None)
        if admission is not None:
            admission.on_refused = lambda reason: self.sessions_refused.labels(reason).inc()
        self.registry.register(_LiveCollector(hub))

    def render(self) -> bytes:
        return generate_latest(self.registry)

    def partial(self, provider: str, first_after_s: float | None) -> None:
        self.partials.labels(provider).inc()
        if first_after_s is not None:
            self.first_partial.labels(provider).observe(max(0.0, first_after_s))


class _LiveCollector:
    def __init__(self, hub: MetricsSource) -> None:
        self.hub = hub

    def collect(self) -> Iterator[Metric]:
        svc = self.hub.service
        by_state = GaugeMetricFamily("asrhub_sessions", "Sessions by state", labels=["state"])
        for state, n in select_counts_by_state(svc.state).items():
            by_state.add_metric([state], n)
        yield by_state
        by_transport = GaugeMetricFamily("asrhub_sessions_live", "Live sessions by transport", labels=["transport"])
        for transport, n in select_counts_by_transport(svc.state).items():
            by_transport.add_metric([transport], n)
        yield by_transport
        s = self.hub.scheduler
        yield GaugeMetricFamily("asrhub_scheduler_queue_depth", "Inference jobs waiting", value=s.queue_depth)
        yield GaugeMetricFamily("asrhub_scheduler_running", "Inference jobs running", value=s.running)
        yield CounterMetricFamily("asrhub_scheduler_dropped_partials", "Partial decodes skipped or superseded",
                                  value=s.dropped_partials)  # exposed as asrhub_scheduler_dropped_partials_total
        lag = svc.max_pending_lag()
        yield GaugeMetricFamily("asrhub_max_pending_lag_seconds", "Oldest audio still waiting for its final",
                                value=lag)
        rtf = GaugeMetricFamily("asrhub_provider_real_time_factor", "Decode seconds per audio second",
                                labels=["provider"])
        health = GaugeMetricFamily("asrhub_provider_available", "1 if the provider is available",
                                   labels=["provider"])
        for p in self.hub.providers.providers.values():
            st = getattr(p, "stats", None)
            if st is not None and st.audio_s > 0:
                rtf.add_metric([p.name], st.decode_s / st.audio_s)
            health.add_metric([p.name], 1.0 if select_available(svc.state, p.name) else 0.0)
        yield rtf
        yield health


class MetricsEffects:
    """Counts control-plane actions and logs each session's end; never dispatches. What the log line says of
    the session (its key, transport, provider) is read from its record in the store (`state`)."""

    def __init__(self, metrics: HubMetrics, state: Callable[[], Any]) -> None:
        self.m = metrics
        self.state = state

    def _log_end(self, session_id: str, reason: str, stats: Any) -> None:
        rec = select_session(self.state(), session_id)  # ended, not removed yet
        st = stats if isinstance(stats, SessionStats) else SessionStats()
        fields = {"session_id": session_id, "key_id": rec.api_key if rec else None,
                  "transport": rec.transport if rec else None, "provider": rec.provider if rec else None,
                  "audio_s": round(st.audio_ms / 1000, 3), "duration_s": round(st.duration_ms / 1000, 3),
                  "utterances": st.utterances, "finals": st.finals, "reason": reason}
        session_log.info("session ended: %s", " ".join(f"{k}={v}" for k, v in fields.items()), extra=fields)

    def _count(self, a: Action[Any]) -> None:
        try:
            p = a.payload
            if a.type == A.final_emitted.type and isinstance(p.event, TranscriptFinal):
                self.m.finals.labels(p.event.provider).inc()
                self.m.final_latency.labels(p.event.provider).observe(p.event.latency_ms / 1000)
                if p.event.lag_ms is not None:
                    self.m.lag.observe(p.event.lag_ms / 1000)
            elif a.type == A.error_raised.type and isinstance(p.event, ErrorEvent):
                self.m.errors.labels(p.event.code).inc()
            elif a.type == A.provider_switched.type:
                self.m.failovers.labels(getattr(p.event, "from_", ""), p.to).inc()
            elif a.type == A.ended.type:
                self.m.sessions_ended.labels(p.reason).inc()
                self._log_end(p.session_id, p.reason, p.stats)
            elif a.type == A.created.type:
                self.m.sessions_started.labels(p.transport).inc()
        except Exception:  # metrics must never break the action stream
            pass

    @create_effect(dispatch=False)
    def count(self, actions: Observable[Action[Any]]) -> Observable[Any]:
        return actions.pipe(ops.do_action(self._count), ops.filter(lambda _: False))
