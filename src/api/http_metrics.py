"""ASGI middleware: count HTTP requests and time them, labelled by route template (never the raw path,
whose ids and query strings would explode the label set)."""

from __future__ import annotations

import time
from typing import Any

from starlette.routing import Mount
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..core.metrics import HubMetrics


def route_template(scope: Scope) -> str:
    """`/v1/sessions/{session_id}/audio` for a matched route, `/socket.io/{path:path}` inside a mount,
    `unmatched` when nothing matched (404 before any route)."""
    route: Any = scope.get("route")
    if route is None:
        return "unmatched"
    path = getattr(route, "path", None) or ""
    if isinstance(route, Mount):
        return path + "/{path:path}"
    return path or "/"


class HttpMetricsMiddleware:
    def __init__(self, app: ASGIApp, metrics: HubMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        t0 = time.perf_counter()
        status = 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            route, method = route_template(scope), scope.get("method", "")
            self.metrics.http_requests.labels(route, method, str(status)).inc()
            self.metrics.http_latency.labels(route, method).observe(time.perf_counter() - t0)
