"""A real `redis-server` (Debian package) on a free loopback port with its own data directory,
stopped afterwards. `restart()` keeps the port, so a cluster sees Redis go away and come back."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import redis

from tests.cluster.proc_log import ProcLog
from tests.support import free_port


class RedisServer:
    def __init__(self, tmp: Path, *, appendonly: bool = False, args: list[str] | None = None) -> None:
        """`args`: more redis-server options (e.g. `--replicaof 127.0.0.1 <port>`)."""
        exe = shutil.which("redis-server")
        if exe is None:
            raise RuntimeError("redis-server is not installed (scripts/bootstrap-test.sh installs it)")
        self.exe = exe
        self.port = free_port()
        self.dir = tmp / f"redis-{self.port}"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.appendonly = appendonly
        self.args = args or []
        self.out: ProcLog | None = None
        self.proc: subprocess.Popen[bytes] | None = None  # out's process (tests signal it)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=5)

    def start(self, timeout: float = 20.0) -> RedisServer:
        """Start it and wait for its own "Ready to accept connections" line."""
        self.out = ProcLog([self.exe, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.dir),
                            "--save", "", "--appendonly", "yes" if self.appendonly else "no", "--daemonize", "no",
                            "--protected-mode", "yes", *self.args], self.dir / "redis.log")
        self.proc = self.out.proc
        try:
            self.out.has("Ready to accept connections", timeout=timeout)
        except RuntimeError:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        if self.out is not None:
            self.out.stop()
        self.out = None
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()
