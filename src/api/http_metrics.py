"""ASGI middleware: count HTTP requests and time them, labelled by route template (never the raw path,
whose ids and query strings would explode the label set)."""

from __future__ import annotations

import time
from typing import Any

from starlette.routing import BaseRoute, Match, Mount
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..engine.metrics import HubMetrics


def route_template(scope: Scope, routes: list[BaseRoute] | None = None, status: int | None = None) -> str:
    """`/v1/sessions/{session_id}/audio` for a matched route, `/socket.io/{path:path}` inside a mount,
    `unmatched` when nothing matches, a 404 from a mount included (the demo page's static files are
    mounted at `/`, so every unknown path reaches that mount). A request refused before routing (401,
    429 from the auth middleware) is matched against `routes` here, so refusals count under their route."""
    route: Any = scope.get("route")
    if route is None and routes:
        route = _match(routes, dict(scope))
    if route is None or (status == 404 and isinstance(route, Mount)):
        return "unmatched"
    path = getattr(route, "path", None) or ""
    if isinstance(route, Mount):
        return path + "/{path:path}"
    return path or "/"


def _match(routes: list[BaseRoute], scope: dict[str, Any]) -> BaseRoute | None:
    return next((r for r in routes if r.matches(scope)[0] == Match.FULL), None)


class HttpMetricsMiddleware:
    def __init__(self, app: ASGIApp, metrics: HubMetrics, routes: list[BaseRoute] | None = None) -> None:
        self.app = app
        self.metrics = metrics
        self.routes = routes

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
            route, method = route_template(scope, self.routes, status), scope.get("method", "")
            self.metrics.http_requests.labels(route, method, str(status)).inc()
            self.metrics.http_latency.labels(route, method).observe(time.perf_counter() - t0)
