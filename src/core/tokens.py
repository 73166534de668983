"""Short-lived, stateless session tokens (POST /v1/tokens): HMAC-SHA256 signed claims.

A token reads `ast1.<claims>.<signature>` (both base64url). The claims name the API key it was issued
for (its key id plus a keyed fingerprint of the key itself, so rotating a key's secret voids its tokens),
its expiry and its scope ("start": it may start sessions, nothing else). Nothing is stored on the
server: any process holding the same secret verifies it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from .commands import Number
from .errors import ErrorCode, HubError

PREFIX = "ast1."
SCOPE_START = "start"


class TokenRequest(BaseModel):
    """POST /v1/tokens body (may be empty)."""

    model_config = ConfigDict(extra="forbid")
    ttl_s: Annotated[int | None, Number] = Field(None, ge=1,
                                                 description="lifetime in seconds; at most server.auth.token_ttl_max_s")


class TokenIssued(BaseModel):
    token: str
    expires_at: int = Field(description="unix time (seconds) after which the token starts no session")


@dataclass(frozen=True)
class TokenClaims:
    key_id: str | None      # None: issued while auth was off
    fingerprint: str
    expires_at: int         # unix seconds
    scope: str


def looks_like_token(value: str) -> bool:
    return value.startswith(PREFIX)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _unauthorized(why: str) -> HubError:
    return HubError(ErrorCode.unauthorized, why, fatal=True)


class TokenSigner:
    def __init__(self, secret: str | None) -> None:
        self.ephemeral = secret is None
        self._secret = secret.encode() if secret is not None else secrets.token_bytes(32)

    def fingerprint(self, key: str) -> str:
        """A keyed digest of the API key (reveals nothing about it without the secret)."""
        return hmac.new(self._secret, b"key:" + key.encode(), hashlib.sha256).hexdigest()[:16]

    def _sign(self, body: str) -> str:
        return _b64(hmac.new(self._secret, (PREFIX + body).encode(), hashlib.sha256).digest())

    def issue(self, key_id: str | None, key: str | None, ttl_s: int, now: float | None = None) -> tuple[str, int]:
        """(token, expires_at)."""
        expires_at = int(now if now is not None else time.time()) + ttl_s
        claims = {"k": key_id, "f": self.fingerprint(key) if key else "", "e": expires_at, "s": SCOPE_START,
                  "n": secrets.token_hex(4)}
        body = _b64(json.dumps(claims, separators=(",", ":")).encode())
        return f"{PREFIX}{body}.{self._sign(body)}", expires_at

    def verify(self, token: str, now: float | None = None, allow_expired: bool = False) -> TokenClaims:
        """The token's claims; HubError(unauthorized) naming why it is refused (malformed, forged, expired).
        `allow_expired` is for requests on a session the token already started (the caller checks that)."""
        body, dot, sig = token[len(PREFIX):].partition(".")
        if not dot or not body or not sig:
            raise _unauthorized("the token is malformed (expected ast1.<claims>.<signature>)")
        if not hmac.compare_digest(self._sign(body).encode(), sig.encode()):
            raise _unauthorized("the token's signature is not valid (forged, altered, or signed by another hub: "
                                "every node must share server.auth.token_secret, and a hub without one "
                                "makes a new secret at each start)")
        try:
            raw = json.loads(_unb64(body))
            claims = TokenClaims(key_id=raw["k"], fingerprint=str(raw["f"]), expires_at=int(raw["e"]),
                                 scope=str(raw["s"]))
        except (ValueError, KeyError, TypeError):
            raise _unauthorized("the token is malformed (its claims cannot be read)") from None
        now = time.time() if now is None else now
        if not allow_expired and now >= claims.expires_at:
            raise _unauthorized(f"the token expired {now - claims.expires_at:.0f} s ago (at unix time "
                                f"{claims.expires_at}); get a new one from POST /v1/tokens")
        return claims
