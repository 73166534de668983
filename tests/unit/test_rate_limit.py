"""Per-key request rates (core.rate): fixed one-minute windows, the algorithm the cluster's Redis script
runs too; a refusal says how long to wait (Retry-After), on the HTTP answer as well."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest

from asrhub.core.auth import Authenticator
from asrhub.core.config import ApiKey, AuthConfig, ServerConfig
from asrhub.core.errors import ErrorCode, HubError
from asrhub.core.rate import RateCounter, RateWindow
from tests.support import HubProcess, base_config, running

T0 = 1_800_000_000 // 60 * 60  # the start of a window


class Clock:
    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def test_the_window_and_its_seconds_left() -> None:
    assert RateWindow.at(T0) == RateWindow(T0 // 60, 60)
    assert RateWindow.at(T0 + 50.2) == RateWindow(T0 // 60, 10)      # 9.8 s left: Retry-After 10
    assert RateWindow.at(T0 + 59.999) == RateWindow(T0 // 60, 1)     # never 0
    assert RateWindow.at(T0 + 60) == RateWindow(T0 // 60 + 1, 60)


def test_past_the_limit_is_refused_until_the_window_ends() -> None:
    clock = Clock(T0 + 50.2)
    rates = RateCounter(clock)
    for _ in range(5):
        rates.hit("alpha", 5)
    with pytest.raises(HubError) as refused:
        rates.hit("alpha", 5)
    err = refused.value
    assert err.code is ErrorCode.rate_limited and err.http_status == 429 and err.retryable
    assert err.retry_after_s == 10
    assert err.message == "more than 5 requests per minute for this API key; slow down"
    rates.hit("beta", 5)         # another key counts on its own
    clock.t = T0 + 59.5
    with pytest.raises(HubError) as again:
        rates.hit("alpha", 5)    # still this window (a refused request counts, as in Redis)
    assert again.value.retry_after_s == 1
    clock.t = T0 + 60            # the next window starts from zero
    for _ in range(5):
        rates.hit("alpha", 5)


def test_no_burst_refill_within_a_window() -> None:
    """A fixed window: five at its start leave none for its end (a token bucket would have refilled)."""
    clock = Clock(T0)
    rates = RateCounter(clock)
    for _ in range(5):
        rates.hit("alpha", 5)
    clock.t = T0 + 48
    with pytest.raises(HubError):
        rates.hit("alpha", 5)


def test_a_limit_below_one_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="positive"):
        RateCounter().hit("alpha", 0)


def test_the_authenticator_refuses_with_retry_after() -> None:
    auth = Authenticator(ServerConfig(auth=AuthConfig(api_keys=[
        ApiKey(key="alpha-secret-key", name="alpha", requests_per_minute=2)])))
    auth.rates.clock = Clock(T0 + 30)
    auth.authenticate("alpha-secret-key")
    auth.authenticate("alpha-secret-key")
    with pytest.raises(HubError) as refused:
        auth.authenticate("alpha-secret-key")
    assert refused.value.code is ErrorCode.rate_limited and refused.value.retry_after_s == 30


KEYS = """
server:
  auth:
    api_keys:
      - key: rate-test-key-0123456789
        name: rated
        requests_per_minute: 3
      - key: rate-test-key-9876543210
        name: rated-again
        requests_per_minute: 3
"""


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HubProcess]:
    yield from running(base_config(keys=KEYS), tmp_path_factory.mktemp("rate"))


def test_http_answer_is_429_with_retry_after(hub: HubProcess) -> None:
    # a window may end between the requests: then the other key, whose windows are all fresh, is asked
    for key in ("rate-test-key-0123456789", "rate-test-key-9876543210"):
        with httpx.Client(base_url=hub.http, headers={"Authorization": f"Bearer {key}"}, timeout=10) as http:
            first = RateWindow.at(time.time())
            answers = [http.get("/v1/providers") for _ in range(4)]
            if RateWindow.at(time.time()).number == first.number:
                break
    assert [r.status_code for r in answers] == [200, 200, 200, 429], [r.text for r in answers]
    refused = answers[-1]
    assert refused.json()["error"]["code"] == "rate_limited"
    assert 1 <= int(refused.headers["retry-after"]) <= 60
