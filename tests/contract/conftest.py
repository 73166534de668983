from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from tests.contract.clients import CONFORMANCE_CLIENTS, Client
from tests.support import HubProcess

MakeClient = Callable[[str], Awaitable[Client]]


@pytest.fixture
async def make_client(hub: HubProcess) -> AsyncIterator[MakeClient]:
    """Connected clients of any transport, closed after the test."""
    made: list[Client] = []

    async def make(transport: str) -> Client:
        c = CONFORMANCE_CLIENTS[transport](hub)
        made.append(c)
        await c.connect()
        return c

    yield make
    for c in made:
        await c.close()
