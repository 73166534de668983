"""API keys, per-key request rates, and the browser origin allow-list (transport-neutral)."""

from __future__ import annotations

import hashlib
import hmac
import time
from dataclasses import dataclass

from .config import ApiKey, ServerConfig
from .errors import ErrorCode, HubError


@dataclass
class _Bucket:
    tokens: float
    at: float


class Authenticator:
    def __init__(self, server: ServerConfig) -> None:
        self.keys: dict[str, ApiKey] = {k.key: k for k in server.auth.api_keys}
        self.origins = server.allowed_origins
        self._buckets: dict[str, _Bucket] = {}

    @property
    def enabled(self) -> bool:
        return bool(self.keys)

    def authenticate(self, token: str | None) -> ApiKey | None:
        """The key's config, None when auth is off; HubError(unauthorized) otherwise."""
        if not self.keys:
            return None
        if not token:
            raise HubError(ErrorCode.unauthorized, "an API key is required (Authorization: Bearer <key>, "
                           "?token=<key>, Socket.IO auth {token}, or gRPC metadata authorization)", fatal=True)
        for key, cfg in self.keys.items():
            if hmac.compare_digest(key.encode(), token.encode()):
                self._rate(cfg)
                return cfg
        raise HubError(ErrorCode.unauthorized, "the API key is not valid", fatal=True)

    def _rate(self, key: ApiKey) -> None:
        if not key.requests_per_minute:
            return
        now = time.monotonic()
        cap = float(key.requests_per_minute)
        b = self._buckets.get(key.key)
        if b is None:
            b = self._buckets[key.key] = _Bucket(cap, now)
        b.tokens = min(cap, b.tokens + (now - b.at) * cap / 60.0)
        b.at = now
        if b.tokens < 1.0:
            raise HubError(ErrorCode.rate_limited, f"more than {key.requests_per_minute} requests per minute "
                           "for this API key; slow down")
        b.tokens -= 1.0

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
