"""The Redis keys of a cluster (DESIGN §8), in one place."""

from __future__ import annotations


def session(session_id: str) -> str:
    """Hash: owner, attached_node, last_seq, ended, api_key (the key's id)."""
    return f"sess:{session_id}"


def events(session_id: str) -> str:
    """Stream: the session's events, entry ID `0-<seq>`, field `event` = the event's JSON (as sent to clients)."""
    return f"ev:{session_id}"


def inbox(session_id: str) -> str:
    """Stream: commands and audio for the session's owner from clients attached elsewhere."""
    return f"in:{session_id}"


def node(node_id: str) -> str:
    """String with a TTL (the lease): the node's load, lag, live count and URL, as JSON."""
    return f"node:{node_id}"


def wake(node_id: str) -> str:
    """Stream: wakes the node's inbox reader when the set of sessions it reads changes."""
    return f"wake:{node_id}"


def reply(token: str) -> str:
    """List: the owner's answer to one resume (`attach` / `mark` with `reply`), read once by the asker."""
    return f"re:{token}"
