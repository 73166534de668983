"""Plain REST: providers, health, readiness (DESIGN §3.7)."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST
from pydantic import BaseModel

from ..cluster.health import ClusterStatus, cluster_status
from ..engine.provider_check import required_unavailable
from ..store.hub.selectors import select_draining

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


NotReadyReason = Literal["starting", "draining", "provider_unavailable", "operator_unavailable", "full", "lagging"]


class Readiness(BaseModel):
    """`GET /readyz`: 200 while this node takes new sessions, 503 otherwise, so a load balancer sends
    new clients elsewhere. `cluster` is "off" (single node), "ok", or "degraded" (Redis unreachable:
    the node still serves, local-only, and stays 200)."""

    ready: bool
    sessions: int                    # live sessions on this node
    reason: NotReadyReason | None    # why not ready; null when ready
    cluster: ClusterStatus
    # provider_unavailable / operator_unavailable: which provider or pipeline operator, why, and the fix
    # (one sentence each); else null
    detail: str | None = None


def readiness(hub: Any) -> Readiness:
    """This node's readiness: loaded and not draining, its default provider and every routed one
    available, the operators its pipeline needs loaded, under `limits.max_sessions`, and finals trailing
    audio by no more than `limits.admission_lag_s` (the same tests admission makes)."""
    if hub is None:
        return Readiness(ready=False, sessions=0, reason="starting", cluster="off")
    sessions = hub.service.live_count()
    limits = hub.config.limits
    reason: NotReadyReason | None = None
    detail: str | None = None
    if select_draining(hub.service.state):
        reason = "draining"
    elif not hub.ready:
        reason = "starting"
    elif missing := required_unavailable(hub.providers):
        reason = "provider_unavailable"
        detail = "; ".join(f"{u.describe()} (fix: {u.fix})" for u in missing)
    elif operators := getattr(hub, "operators_unavailable", []):
        reason = "operator_unavailable"
        detail = "; ".join(f"{u.describe()} (fix: {u.fix})" for u in operators)
    elif sessions >= limits.max_sessions:
        reason = "full"
    elif hub.service.max_pending_lag() > limits.admission_lag_s:
        reason = "lagging"
    return Readiness(ready=reason is None, sessions=sessions, reason=reason,
                     cluster=cluster_status(getattr(hub, "cluster", None)), detail=detail)


@router.get("/readyz", response_model=Readiness, responses={503: {"model": Readiness}})
async def readyz(request: Request) -> JSONResponse:
    r = readiness(getattr(request.app.state, "hub", None))
    return JSONResponse(r.model_dump(), status_code=200 if r.ready else 503)
