"""Typed views of redis-py's untyped answers (stream entries, IDs)."""

from __future__ import annotations

from typing import Any

Entry = tuple[bytes, dict[bytes, bytes]]


def as_bytes(v: Any) -> bytes:
    return v if isinstance(v, bytes) else str(v).encode()


_b = as_bytes


def entries(raw: Any) -> list[Entry]:
    """XRANGE / XREVRANGE answer -> [(id, fields)]."""
    return [(_b(i), {_b(k): _b(v) for k, v in f.items()}) for i, f in (raw or [])]


def read(raw: Any) -> list[tuple[str, list[Entry]]]:
    """XREAD answer (RESP2 list or RESP3 dict) -> [(stream key, [(id, fields)])]."""
    pairs = raw.items() if isinstance(raw, dict) else (raw or [])
    return [(_b(k).decode(), entries(v[0] if isinstance(raw, dict) and v and isinstance(v[0], list) else v))
            for k, v in pairs]


def seq_of(entry_id: bytes) -> int:
    """The seq of a log entry (its ID is `0-<seq>`)."""
    return int(entry_id.split(b"-", 1)[1])
