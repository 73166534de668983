"""POST /v1/tokens: a short-lived token for browsers, scoped to the calling API key (DESIGN §3.8).

The key comes in `Authorization: Bearer <key>` (the middleware refuses tokens here: a token cannot mint
tokens). The answer `{token, expires_at}` starts sessions until expires_at and does nothing else."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from ..core.auth import Authenticator, Credential
from ..core.commands import parse_json
from ..core.errors import HubError
from ..core.tokens import TokenIssued, TokenRequest
from .errors import error_response, error_responses

router = APIRouter(tags=["auth"])


async def _read(request: Request) -> TokenRequest:
    """The body (none or blank: the defaults) as a TokenRequest; HubError naming what is wrong."""
    return parse_json(await request.body(), TokenRequest.model_validate, what="body", empty_is_object=True,
                      not_object='body must be a JSON object like {"ttl_s": 60}')


@router.post("/v1/tokens", response_model=TokenIssued, responses=error_responses(400, 413),
             summary="A short-lived token that starts sessions for the calling API key",
             openapi_extra={"requestBody": {"required": False, "content": {
                 "application/json": {"schema": TokenRequest.model_json_schema()}}}})
async def create_token(request: Request) -> Response:
    auth: Authenticator = request.app.state.hub.auth
    cred: Credential = request.scope.get("asrhub.credential") or Credential(None, None)
    try:
        req = await _read(request)
        token, expires_at = auth.issue_token(cred.key, req.ttl_s)
    except HubError as e:
        return error_response(e)
    return JSONResponse(TokenIssued(token=token, expires_at=expires_at).model_dump(),
                        headers={"cache-control": "no-store"})
