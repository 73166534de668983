"""`cluster.redis_url` (DESIGN §8 "Redis HA"): the Sentinel form is read into its parts, and a URL that
is wrong is refused with an error naming what is wrong."""

from __future__ import annotations

import pytest
from redis.asyncio.sentinel import SentinelConnectionPool

from asrhub.cluster.connect import RedisUrlError, SentinelUrl, parse_sentinel_url, redis_client
from asrhub.core.config import mask_url


def test_sentinel_url_parts() -> None:
    assert parse_sentinel_url("redis+sentinel://host:26379,host2:26380/mymaster/0") == SentinelUrl(
        (("host", 26379), ("host2", 26380)), "mymaster", 0)
    assert parse_sentinel_url("redis+sentinel://a,[::1]:5000/m") == SentinelUrl((("a", 26379), ("::1", 5000)), "m", 0)
    u = parse_sentinel_url("redis+sentinel://:s%40cret@h:1/m/3?sentinel_password=x")
    assert (u.username, u.password, u.db, u.sentinel_password) == (None, "s@cret", 3, "x")
    assert parse_sentinel_url("redis+sentinel://hub:pw@h:1/m/0").username == "hub"


@pytest.mark.parametrize(("url", "says"), [
    ("redis+sentinel://h:1", "names the master"),
    ("redis+sentinel://h:1/m/x", "'x' is not a number"),
    ("redis+sentinel://h:1/m/0/extra", "too many path parts"),
    ("redis+sentinel://h:1,,h2:2/m", "stray ','"),
    ("redis+sentinel://h:99999/m", "no valid port"),
    ("redis+sentinel://h:1/m?db=2", "unknown option"),
    ("nope://h:1/0", "cluster.redis_url"),
])
def test_bad_urls_are_named(url: str, says: str) -> None:
    with pytest.raises(RedisUrlError, match=says):
        if url.startswith("redis+sentinel"):
            parse_sentinel_url(url)
        else:
            redis_client(url, socket_timeout=1, connect_timeout=1)


def test_sentinel_client_and_masked_password() -> None:
    client = redis_client("redis+sentinel://:pw@127.0.0.1:26379/mymaster/2", socket_timeout=1, connect_timeout=1)
    pool = client.connection_pool
    assert isinstance(pool, SentinelConnectionPool) and pool.service_name == "mymaster"
    assert pool.connection_kwargs["db"] == 2 and pool.connection_kwargs["password"] == "pw"
    assert mask_url("redis+sentinel://:pw@h:1,h2:2/m/0") == "redis+sentinel://:***@h:1,h2:2/m/0"
