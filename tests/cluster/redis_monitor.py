"""What the nodes of a test cluster ask Redis, in order: `MONITOR` on a connection of its own, read by a
thread, and a node's lease running out, waited for as Redis announces it (keyspace notifications), not
polled. `Monitor.until_here()` ends the record at a mark the test itself sends (`ECHO`), so every command
Redis ran before it is in the record."""

from __future__ import annotations

import re
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import redis

from tests.cluster.redis_server import RedisServer

_LINE = re.compile(r"^[\d.]+ \[\d+ ([^\]]*)\] (.*)$", re.S)  # time [db client] "word" "word" ...
_WORD = re.compile(r'"(.*?)(?<!\\)"', re.S)


@dataclass(frozen=True)
class Command:
    """One command Redis ran: its words (`XADD`, key, ...) and who sent it (`lua`: a script's own call)."""

    words: tuple[str, ...]
    client_type: str

    @property
    def name(self) -> str:
        return self.words[0].upper() if self.words else ""

    def on(self, key: str) -> bool:
        """The command names `key` among its arguments."""
        return key in self.words[1:]


class Monitor:
    def __init__(self, server: RedisServer) -> None:
        self.client = server.client()
        self.commands: list[Command] = []
        self._mon: Any = None
        self._thread: threading.Thread | None = None
        self._mark = f"monitor-end-{uuid.uuid4().hex}"

    def start(self) -> Monitor:
        """Recording from the moment this returns (MONITOR has answered OK)."""
        self._mon = redis.Redis(host="127.0.0.1", port=self.client.connection_pool.connection_kwargs["port"],
                                socket_timeout=60).monitor()
        self._mon.__enter__()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()
        return self

    def _read(self) -> None:
        conn = self._mon.connection
        while True:
            raw = conn.read_response()
            line = raw.decode(errors="replace") if isinstance(raw, bytes) else str(raw)
            m = _LINE.match(line)
            if m is None:
                continue
            words = tuple(w.replace('\\"', '"') for w in _WORD.findall(m.group(2)))
            if words[:2] == ("ECHO", self._mark) or words[:2] == ("echo", self._mark):
                return
            self.commands.append(Command(words, "lua" if m.group(1) == "lua" else "tcp"))

    def until_here(self) -> list[Command]:
        """Every command Redis ran up to now (the record ends with a mark sent after them)."""
        assert self._thread is not None
        self.client.echo(self._mark)
        self._thread.join(60)
        assert not self._thread.is_alive(), "MONITOR did not see the end mark"
        self._mon.__exit__(None, None, None)
        return self.commands


EVENTS = "E$x"  # keyspace notifications: key events, of string commands (SET) and of expiries


def renewed_in_order(server: RedisServer, *leases: str, timeout_s: float = 30.0) -> None:
    """Wait until Redis has seen the leases `leases` set (renewed) one after another, in this order. A node
    takes no other node for dead until a lease has passed since it reached Redis (`owner_alive`'s guard
    against a Redis failover), so a test that kills node0 right after the cluster starts waits first for
    `renewed_in_order(server, "node:node1", "node:node0")`: node0's last lease then ends a lease after
    node1 had reached Redis."""
    client = server.client()
    client.config_set("notify-keyspace-events", EVENTS)
    pubsub = client.pubsub()
    try:
        pubsub.subscribe("__keyevent@0__:set")
        pending = [k.encode() for k in leases]
        while pending:
            msg = pubsub.get_message(timeout=timeout_s)
            assert msg is not None, f"no lease set in {timeout_s} s; waiting for {pending}"
            if msg.get("type") == "message" and msg.get("data") == pending[0]:
                pending.pop(0)
    finally:
        pubsub.close()


@contextmanager
def expiry_of(server: RedisServer, key: str, timeout_s: float = 30.0) -> Iterator[threading.Event]:
    """An event set once Redis has expired `key` (a node's lease: `node:{id}`), as Redis announces it
    (`notify-keyspace-events Ex`). Subscribed before the block runs, so the expiry is never missed."""
    client = server.client()
    client.config_set("notify-keyspace-events", EVENTS)
    pubsub = client.pubsub()
    pubsub.subscribe("__keyevent@0__:expired")
    pubsub.get_message(timeout=timeout_s)  # the subscription's own confirmation
    expired = threading.Event()

    def watch() -> None:
        while not expired.is_set():
            msg = pubsub.get_message(timeout=timeout_s)
            if msg is None:
                return
            if msg.get("type") == "message" and msg.get("data") == key.encode():
                expired.set()

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    try:
        yield expired
    finally:
        thread.join(timeout_s)
        pubsub.close()
