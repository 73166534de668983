"""Redis with Sentinel on loopback (DESIGN §8 "Redis HA"): a primary, one replica and three
`redis-sentinel` processes (Debian's), each on a free port with its own directory, stopped afterwards.

`ready()` returns once every sentinel knows the replica and the two other sentinels (it waits on the
sentinels' own `+slave` / `+sentinel` announcements), so a failover can be run at once.
`switched()` waits for the `+switch-master` message of a sentinel, which names the new primary.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import redis

from tests.cluster.redis_server import RedisServer
from tests.support import free_port

MASTER = "mymaster"
DOWN_AFTER_MS = 1000  # a primary that does not answer for this long is down (subjectively; quorum 2)


class Sentinels:
    def __init__(self, tmp: Path, count: int = 3) -> None:
        exe = shutil.which("redis-sentinel")
        if exe is None:
            raise RuntimeError("redis-sentinel is not installed (scripts/bootstrap-test.sh installs it)")
        self.exe = exe
        self.tmp = tmp
        self.primary = RedisServer(tmp).start()
        self.replica = RedisServer(tmp, args=["--replicaof", "127.0.0.1", str(self.primary.port)]).start()
        self.servers = {self.primary.port: self.primary, self.replica.port: self.replica}
        self.ports = [free_port() for _ in range(count)]
        self.procs: list[subprocess.Popen[bytes]] = []
        for port in self.ports:
            d = tmp / f"sentinel-{port}"
            d.mkdir()
            conf = d / "sentinel.conf"  # sentinel rewrites its own config file: each its own
            conf.write_text(f"port {port}\nbind 127.0.0.1\ndir {d}\ndaemonize no\n"
                            f"sentinel monitor {MASTER} 127.0.0.1 {self.primary.port} 2\n"
                            f"sentinel down-after-milliseconds {MASTER} {DOWN_AFTER_MS}\n"
                            f"sentinel failover-timeout {MASTER} 10000\n"
                            f"sentinel parallel-syncs {MASTER} 1\n")
            with open(d / "sentinel.log", "ab") as log:
                self.procs.append(subprocess.Popen([self.exe, str(conf)], stdout=log, stderr=subprocess.STDOUT))

    @property
    def url(self) -> str:
        hosts = ",".join(f"127.0.0.1:{p}" for p in self.ports)
        return f"redis+sentinel://{hosts}/{MASTER}/0"

    def sentinel(self, i: int = 0) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.ports[i], socket_timeout=10)

    def master_port(self) -> int:
        _, port = self.sentinel().sentinel_get_master_addr_by_name(MASTER)
        return int(port)

    def client(self) -> redis.Redis:
        """A client of the primary the sentinels name now."""
        return self.servers[self.master_port()].client()

    def ready(self, timeout: float = 30.0) -> Sentinels:
        for i, proc in enumerate(self.procs):
            self._wait_answering(i, proc, timeout)
        for i in range(len(self.ports)):
            self._wait_known(i, timeout)
        return self

    def _wait_answering(self, i: int, proc: subprocess.Popen[bytes], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:  # the process starting up: nothing to subscribe to yet (as RedisServer.start)
            if proc.poll() is not None:
                raise RuntimeError(f"redis-sentinel exited: {self._log(i)}")
            try:
                if self.sentinel(i).ping():
                    return
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"redis-sentinel did not answer: {self._log(i)}") from None
                time.sleep(0.05)

    def _log(self, i: int) -> str:
        return (self.tmp / f"sentinel-{self.ports[i]}" / "sentinel.log").read_text()[-2000:]

    def _wait_known(self, i: int, timeout: float) -> None:
        """Sentinel i knows the replica and every other sentinel (subscribed first, then looked at, so
        no announcement is missed between the two)."""
        s = self.sentinel(i)
        pubsub = s.pubsub()
        pubsub.subscribe("+slave", "+sentinel")
        try:
            deadline = time.monotonic() + timeout
            while True:
                replicas = [r for r in s.sentinel_slaves(MASTER) if "s_down" not in r["flags"]]
                others = s.sentinel_sentinels(MASTER)
                if replicas and len(others) >= len(self.ports) - 1:
                    return
                left = deadline - time.monotonic()
                if left <= 0:
                    raise RuntimeError(f"sentinel {self.ports[i]} knows {len(replicas)} replica(s) and "
                                       f"{len(others)} sentinel(s): {self._log(i)}")
                pubsub.get_message(timeout=left)  # the next announcement (or the deadline)
        finally:
            pubsub.close()

    def switch_watch(self) -> redis.client.PubSub:
        """Subscribe to `+switch-master` now (before the failover is caused)."""
        pubsub = self.sentinel(1).pubsub()
        pubsub.subscribe("+switch-master")
        pubsub.get_message(timeout=5)  # the subscription's confirmation
        return pubsub

    @staticmethod
    def switched(pubsub: redis.client.PubSub, timeout: float = 30.0) -> int:
        """Wait for `+switch-master <name> <old ip> <old port> <new ip> <new port>`; the new port."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError("no +switch-master within the time allowed")
            msg = pubsub.get_message(timeout=left)
            if msg is not None and msg["type"] == "message":
                pubsub.close()
                return int(msg["data"].split()[-1])

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        self.replica.stop()
        self.primary.stop()
