"""POST /v1/tokens from Python: a short-lived token for a browser or another process."""

from __future__ import annotations

from ..core.tokens import TokenIssued
from .errors import client_dependency
from .sse import http_error


async def create_token(base_url: str, api_key: str, ttl_s: int | None = None) -> TokenIssued:
    """A token that starts sessions for `api_key` until its `expires_at` (raises HubRequestError)."""
    httpx = client_dependency("httpx", "create_token")
    async with httpx.AsyncClient(base_url=base_url.rstrip("/"), timeout=30) as http:
        r = await http.post("/v1/tokens", json={"ttl_s": ttl_s} if ttl_s is not None else {},
                            headers={"Authorization": f"Bearer {api_key}"})
    if r.status_code >= 400:
        raise http_error(r.status_code, r.content)
    return TokenIssued.model_validate(r.json())
