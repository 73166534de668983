"""Redis with Sentinel on loopback (DESIGN §8 "Redis HA"): a primary, one replica and three
`redis-sentinel` processes (Debian's), each on a free port with its own directory, stopped afterwards.

`ready()` returns once every sentinel knows the replica and the two other sentinels (it waits on the
`+monitor` / `+slave` / `+sentinel` lines of each sentinel's output), so a failover can be run at once.
`switched()` waits for the `+switch-master` message of a sentinel, which names the new primary.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import redis

from tests.cluster.proc_log import ProcLog
from tests.cluster.redis_server import RedisServer
from tests.support import free_ports

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
        self.ports = free_ports(count)
        self.outs: list[ProcLog] = []
        for port in self.ports:
            d = tmp / f"sentinel-{port}"
            d.mkdir()
            conf = d / "sentinel.conf"  # sentinel rewrites its own config file: each its own
            conf.write_text(f"port {port}\nbind 127.0.0.1\ndir {d}\ndaemonize no\n"
                            f"sentinel monitor {MASTER} 127.0.0.1 {self.primary.port} 2\n"
                            f"sentinel down-after-milliseconds {MASTER} {DOWN_AFTER_MS}\n"
                            f"sentinel failover-timeout {MASTER} 10000\n"
                            f"sentinel parallel-syncs {MASTER} 1\n")
            self.outs.append(ProcLog([self.exe, str(conf)], d / "sentinel.log"))

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
        """Every sentinel has announced the primary it monitors (`+monitor`, said once it listens), the
        replica (`+slave`) and each other sentinel (`+sentinel`)."""
        others = len(self.ports) - 1

        def known(lines: list[str]) -> bool:
            return (any(" +monitor master " in ln for ln in lines)
                    and any(" +slave slave " in ln for ln in lines)
                    and sum(" +sentinel sentinel " in ln for ln in lines) >= others)

        for port, out in zip(self.ports, self.outs, strict=True):
            out.wait_for(known, timeout=timeout, what=f"sentinel {port} knowing the primary, replica and "
                                                      f"{others} other sentinels")
        return self

    def switch_watch(self) -> redis.client.PubSub:
        """Subscribe to `+switch-master` now (before the failover is caused)."""
        pubsub = self.sentinel(1).pubsub()
        pubsub.subscribe("+switch-master")
        confirmed = pubsub.get_message(timeout=5)
        assert confirmed is not None and confirmed["type"] == "subscribe", confirmed
        return pubsub

    @staticmethod
    def switched(pubsub: redis.client.PubSub, timeout: float = 30.0) -> int:
        """Wait for `+switch-master <name> <old ip> <old port> <new ip> <new port>` (the one channel
        subscribed to: its next message is the switch); the new port."""
        try:
            msg = pubsub.get_message(timeout=timeout)
        finally:
            pubsub.close()
        assert msg is not None, f"no +switch-master within {timeout:g} s"
        assert msg["type"] == "message", msg
        return int(msg["data"].split()[-1])

    def stop(self) -> None:
        for out in self.outs:
            out.stop()
        self.replica.stop()
        self.primary.stop()
