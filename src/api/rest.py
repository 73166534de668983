"""Plain REST: providers, health, readiness (DESIGN §3.7)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST

router = APIRouter()


@router.get("/v1/providers")
async def list_providers(request: Request) -> list[dict[str, Any]]:
    return request.app.state.hub.providers.describe()  # type: ignore[no-any-return]


@router.get("/metrics", include_in_schema=False)
async def metrics(request: Request) -> Response:
    return Response(request.app.state.hub.metrics.render(), media_type=CONTENT_TYPE_LATEST)


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(request: Request) -> JSONResponse:
    hub = getattr(request.app.state, "hub", None)
    ready = hub is not None and hub.ready
    return JSONResponse({"ready": ready, "sessions": hub.service.live_count() if hub else 0},
                        status_code=200 if ready else 503)
