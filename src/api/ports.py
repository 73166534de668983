"""Is a listening port free? `asrhub serve` checks its HTTP and gRPC ports before it loads any model, so a
second hub on a taken port stops at once with one line that names the port and the flag that moves it,
rather than after the models load (HTTP: uvicorn's ERROR) or, for gRPC, sharing the port (grpc's default
SO_REUSEPORT let a second hub take half of the first one's calls)."""

from __future__ import annotations

import errno
import socket

from ..core.config import ServerConfig
from ..core.errors import ErrorCode, HubError


def in_use(host: str, port: int) -> bool:
    """Another socket listens on host:port."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except OSError:
        return False  # an unresolvable host: the server names it when it binds
    for family, kind, proto, _, addr in infos:
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # a restart's TIME_WAIT is no holder
            try:
                probe.bind(addr)
            except OSError as e:
                if e.errno == errno.EADDRINUSE:
                    return True
    return False


def port_taken(kind: str, host: str, port: int, flag: str, key: str) -> HubError:
    return HubError(ErrorCode.internal, f"the {kind} port {host}:{port} is in use by another process: stop it, "
                    f"or choose another port ({flag}, {key})")


def grpc_port_taken(host: str, port: int) -> HubError:
    return port_taken("gRPC", host, port, "--grpc-port", "server.grpc_port; server.grpc_enabled: false turns "
                      "gRPC off")


def check_ports(server: ServerConfig) -> None:
    """HubError naming the first of the hub's ports that another process holds (port 0 = any free one)."""
    if server.port != 0 and in_use(server.host, server.port):
        raise port_taken("HTTP", server.host, server.port, "--port", "server.port")
    if server.grpc_enabled and server.grpc_port != 0 and in_use(server.host, server.grpc_port):
        raise grpc_port_taken(server.host, server.grpc_port)
