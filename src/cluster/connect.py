"""The cluster's Redis clients, built from `cluster.redis_url` (DESIGN §8 "Redis HA").

Two forms:
- `redis://[:password@]host:port/db` (also `rediss://`, `unix://`): one Redis, redis-py's own URL parsing;
- `redis+sentinel://[[user]:password@]host:port,host2:port2/<master name>/<db>`: Redis Sentinel. The
  clients ask the sentinels where the primary of `<master name>` is and ask again after it fails over
  (redis-py's `Sentinel.master_for`). The password is the data nodes' (`requirepass`); a sentinel that
  wants one of its own takes `?sentinel_password=…`. The port defaults to 26379, the db to 0.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import redis.asyncio as aioredis
from redis.asyncio.sentinel import Sentinel

SENTINEL_SCHEME = "redis+sentinel"
SENTINEL_PORT = 26379


class RedisUrlError(ValueError):
    """`cluster.redis_url` is not a Redis URL this hub can use; the message names what is wrong."""


@dataclass(frozen=True, slots=True)
class SentinelUrl:
    sentinels: tuple[tuple[str, int], ...]
    master: str
    db: int = 0
    username: str | None = None
    password: str | None = None
    sentinel_password: str | None = None


def is_sentinel(url: str) -> bool:
    return url.lower().startswith(SENTINEL_SCHEME + "://")


def parse_sentinel_url(url: str) -> SentinelUrl:
    """`redis+sentinel://[[user]:password@]h1:p1,h2:p2/<master>/<db>[?sentinel_password=…]`."""
    parts = urlsplit(url)
    if parts.scheme.lower() != SENTINEL_SCHEME:
        raise RedisUrlError(f"cluster.redis_url: expected {SENTINEL_SCHEME}://…, got scheme '{parts.scheme}'")
    netloc = parts.netloc
    username = password = None
    if "@" in netloc:
        cred, netloc = netloc.rsplit("@", 1)
        user, sep, pw = cred.partition(":")
        username = unquote(user) or None
        password = unquote(pw) if sep else None
    sentinels: list[tuple[str, int]] = []
    for hostport in netloc.split(","):
        host, port = _host_port(hostport)
        sentinels.append((host, port))
    path = [p for p in parts.path.split("/") if p]
    if not path:
        raise RedisUrlError("cluster.redis_url: a Sentinel URL names the master after the hosts "
                            f"({SENTINEL_SCHEME}://host:26379,host2:26379/<master>/<db>)")
    if len(path) > 2:
        raise RedisUrlError(f"cluster.redis_url: too many path parts '{parts.path}' (expected /<master>/<db>)")
    db = 0
    if len(path) == 2:
        if not path[1].isdigit():
            raise RedisUrlError(f"cluster.redis_url: the database '{path[1]}' is not a number")
        db = int(path[1])
    query = parse_qs(parts.query)
    unknown = set(query) - {"sentinel_password"}
    if unknown:
        raise RedisUrlError(f"cluster.redis_url: unknown option(s) {sorted(unknown)} (known: sentinel_password)")
    sentinel_pw = query.get("sentinel_password", [None])[-1]
    return SentinelUrl(tuple(sentinels), unquote(path[0]), db, username, password, sentinel_pw)


def _host_port(text: str) -> tuple[str, int]:
    text = text.strip()
    if not text:
        raise RedisUrlError("cluster.redis_url: an empty sentinel address (a stray ',')")
    if text.startswith("["):  # [ipv6]:port
        host, _, rest = text[1:].partition("]")
        port_text = rest[1:] if rest.startswith(":") else ""
    else:
        host, _, port_text = text.rpartition(":") if ":" in text else (text, "", "")
    if not host:
        raise RedisUrlError(f"cluster.redis_url: the sentinel address '{text}' has no host")
    if not port_text:
        return host, SENTINEL_PORT
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise RedisUrlError(f"cluster.redis_url: the sentinel address '{text}' has no valid port")
    return host, int(port_text)


def redis_client(url: str, *, socket_timeout: float, connect_timeout: float) -> aioredis.Redis:
    """A client of the cluster's Redis primary: a plain URL, or the primary Sentinel names now."""
    if not is_sentinel(url):
        try:
            return aioredis.Redis.from_url(url, socket_timeout=socket_timeout, socket_connect_timeout=connect_timeout)
        except ValueError as e:
            raise RedisUrlError(f"cluster.redis_url: {e}") from None
    s = parse_sentinel_url(url)
    sentinel_kwargs: dict[str, Any] = {"socket_timeout": connect_timeout, "socket_connect_timeout": connect_timeout}
    if s.sentinel_password:
        sentinel_kwargs["password"] = s.sentinel_password
    sentinel = Sentinel(list(s.sentinels), sentinel_kwargs=sentinel_kwargs, socket_timeout=socket_timeout,
                        socket_connect_timeout=connect_timeout, db=s.db, username=s.username, password=s.password)
    return sentinel.master_for(s.master)
