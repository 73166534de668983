"""What the session service tells a cluster node of its sessions (DESIGN §8): the one way the engine sees
the cluster. src/cluster/node.py implements it; the hub sets `SessionService.cluster` when
`cluster.redis_url` is set."""

from __future__ import annotations

from typing import Protocol

from .session import Session


class ClusterHooks(Protocol):
    def logs(self, transport: str) -> bool:
        """A new session of `transport` is logged to the cluster (resumable on any node); not when Redis
        is down (it is local only), nor on wires that cannot resume (OpenAI, Realtime)."""
        ...

    def created(self, session: Session, transport: str, api_key: str | None) -> None: ...

    def removed(self, session_id: str) -> None: ...

    def resumed(self, session_id: str) -> None:
        """A client resumed the session on this node (its own)."""
        ...
