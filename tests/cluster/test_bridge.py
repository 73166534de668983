"""Resume on another node (issue 13, DESIGN §8): a session started on one node, dropped, resumed on
another; the events continue gapless from the client's last seq, and the audio sent to the new node
reaches the owner's pipeline. Three real `asrhub serve` nodes on one real redis-server."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.cluster.nodes import Cluster, WsClient, assert_gapless, finals, speech
from tests.support import normalise

FIRST, SECOND = "en_libri_1221", "en_libri_1089-134691"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    c = Cluster(tmp_path_factory.mktemp("cluster"), 3)
    yield c
    c.stop()


@pytest.fixture(scope="module")
def reference(cluster: Cluster) -> list[str]:
    """The finals of the same audio on one node, without a drop."""
    import asyncio

    async def run() -> list[str]:
        c = WsClient()
        await c.connect(cluster.nodes[0])
        await c.send_audio(speech(FIRST, SECOND))
        await c.stop()
        await c.rest()
        assert_gapless(c.events)
        return finals(c.events)

    texts = asyncio.run(run())
    assert len(texts) >= 2, texts
    return texts


async def test_ws_resume_on_another_node(cluster: Cluster, reference: list[str]) -> None:
    c = WsClient()
    await c.connect(cluster.nodes[0])
    await c.send_audio(speech(FIRST))
    await c.recv_until(lambda e: e["type"] == "transcript.final")
    k = c.last_seq
    await c.drop()
    assert cluster.owner(c.session_id) == "node0"

    await c.connect(cluster.nodes[1], resume=True)
    await c.send_audio(speech(SECOND))  # through node1 to node0's pipeline
    await c.stop()
    await c.rest()

    assert_gapless(c.events)  # k+1 ... N after the resume: none lost, none twice
    assert c.events[k]["seq"] == k + 1
    assert [normalise(t) for t in finals(c.events)] == [normalise(t) for t in reference]
    assert cluster.owner(c.session_id) == "node0"  # computed where it was created
