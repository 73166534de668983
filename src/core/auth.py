"""API keys, short-lived session tokens, per-key request rates, and the browser origin allow-list
(transport-neutral).

A credential is an API key or a token from POST /v1/tokens (core.tokens). What it may do is the
`purpose` of the check: "api" (every route; keys only), "start" (starting or resuming a session: keys,
or unexpired tokens), "session" (a request on a session that already runs, HTTP+SSE: keys, or a token
of the session's own key that was valid when the session started; the caller checks the session).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from dataclasses import dataclass
from typing import Literal

from .config import ApiKey, ServerConfig
from .errors import ErrorCode, HubError
from .rate import RateCounter
from .tokens import TokenClaims, TokenSigner, looks_like_token

log = logging.getLogger(__name__)

Purpose = Literal["api", "start", "session"]
TOKEN_ROUTES = ("WebSocket /v1/ws, POST /v1/sessions and the session's own routes, Socket.IO /asr, "
                "gRPC StreamingRecognize")


@dataclass(frozen=True)
class Credential:
    key: ApiKey | None            # None when auth is off
    token: TokenClaims | None     # set when the credential was a short-lived token


class Authenticator:
    def __init__(self, server: ServerConfig) -> None:
        self.keys: dict[str, ApiKey] = {k.key: k for k in server.auth.api_keys}
        self.origins = server.allowed_origins
        self.rates = RateCounter()  # key requests_per_minute, fixed windows as across nodes (core.rate)
        self.tokens = TokenSigner(server.auth.token_secret)
        self.token_ttl_max_s = server.auth.token_ttl_max_s
        self.token_ttl_default_s = min(server.auth.token_ttl_default_s, server.auth.token_ttl_max_s)
        if self.keys and self.tokens.ephemeral:
            log.info("server.auth.token_secret is not set: short-lived tokens are signed with a secret made at "
                     "start; they do not survive a restart and other nodes do not accept them")

    @property
    def enabled(self) -> bool:
        return bool(self.keys)

    def authenticate(self, token: str | None, purpose: Purpose = "api", what: str = "this request") -> ApiKey | None:
        """The key's config, None when auth is off; HubError(unauthorized) otherwise. `purpose` "start"
        (a call that starts a session) also takes a short-lived token; "api" takes API keys only."""
        return self.credential(token, purpose, what).key

    def credential(self, token: str | None, purpose: Purpose = "api", what: str = "this request") -> Credential:
        if not self.keys:
            return Credential(None, None)
        if not token:
            raise HubError(ErrorCode.unauthorized, "an API key is required (Authorization: Bearer <key>, "
                           "?token=<key>, Socket.IO auth {token}, or gRPC metadata authorization)", fatal=True)
        for key, cfg in self.keys.items():
            if hmac.compare_digest(key.encode(), token.encode()):
                self._rate(cfg)
                return Credential(cfg, None)
        if not looks_like_token(token):
            raise HubError(ErrorCode.unauthorized, "the API key is not valid", fatal=True)
        claims = self.tokens.verify(token, allow_expired=purpose == "session")
        if purpose == "api" or claims.scope != "start":
            raise HubError(ErrorCode.unauthorized, f"a short-lived token only starts sessions ({TOKEN_ROUTES}); "
                           f"{what} needs an API key", fatal=True)
        cfg = self._token_key(claims)
        self._rate(cfg)
        return Credential(cfg, claims)

    def _token_key(self, claims: TokenClaims) -> ApiKey:
        for cfg in self.keys.values():
            if key_id(cfg) == claims.key_id and hmac.compare_digest(self.tokens.fingerprint(cfg.key),
                                                                     claims.fingerprint):
                return cfg
        raise HubError(ErrorCode.unauthorized, f"the API key this token was issued for ({claims.key_id}) is no "
                       "longer configured (removed or rotated)", fatal=True)

    def issue_token(self, key: ApiKey | None, ttl_s: int | None) -> tuple[str, int]:
        """(token, expires_at) for the calling key; ttl_s bounded by server.auth.token_ttl_max_s."""
        ttl = self.token_ttl_default_s if ttl_s is None else ttl_s
        if ttl > self.token_ttl_max_s:
            raise HubError(ErrorCode.invalid_command, f"ttl_s {ttl} exceeds the hub's limit of {self.token_ttl_max_s} "
                           "s (server.auth.token_ttl_max_s)")
        return self.tokens.issue(key_id(key), key.key if key else None, ttl)

    def _rate(self, key: ApiKey) -> None:
        if key.requests_per_minute:
            self.rates.hit(key.key, key.requests_per_minute)

    def origin_allowed(self, origin: str | None) -> bool:
        return origin is None or "*" in self.origins or origin in self.origins


def key_id(key: ApiKey | None) -> str | None:
    """What the hub records for a key (never the secret itself): its name, or a digest."""
    if key is None:
        return None
    return key.name or "key-" + hashlib.sha256(key.key.encode()).hexdigest()[:12]


def bearer(header: str | None) -> str | None:
    if not header:
        return None
    scheme, _, value = header.partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None


LOOPBACK = ("127.0.0.1", "::1", "localhost")


def check_bind(server: ServerConfig) -> None:
    """With no API keys the hub serves loopback only."""
    if not server.auth.api_keys and server.host not in LOOPBACK and not server.host.startswith("127."):
        raise HubError(ErrorCode.unauthorized, f"refusing to listen on {server.host} without API keys: configure "
                       "server.auth.api_keys, or bind to 127.0.0.1")
