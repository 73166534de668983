"""What `/readyz` asks of a node's cluster link: is it degraded (Redis unreachable, local-only)?"""

from __future__ import annotations

from typing import Literal, Protocol, runtime_checkable

ClusterStatus = Literal["off", "ok", "degraded"]


@runtime_checkable
class ClusterHealth(Protocol):
    """Anything that knows whether this node currently reaches Redis (the node's cluster link)."""

    @property
    def degraded(self) -> bool:
        """True while Redis is unreachable and the node admits and serves local-only."""
        ...


def cluster_status(cluster: ClusterHealth | None) -> ClusterStatus:
    """"off" with no cluster configured, else "degraded" or "ok"."""
    if cluster is None:
        return "off"
    return "degraded" if cluster.degraded else "ok"
