#!/usr/bin/env python3
"""Render deploy/nginx.conf for a given set of hub nodes, listen addresses and paths (stdlib only).

The shipped nginx.conf is a working config for deploy/docker-compose.cluster.yml. Its variable parts sit
between `# render: NAME` and `# end render` lines; this script replaces the lines of the blocks it is
given values for and leaves every other line as it is (the markers stay, so the output can be rendered
again):

  http_servers, grpc_servers   `server HOST:PORT ...;` per node (--hub HOST:HTTP_PORT:GRPC_PORT, repeated)
  listen_http, listen_grpc     the public HTTP and gRPC listeners (--listen, --grpc-listen: [ADDR:]PORT)
  main, logs                   pid, error log, access log and temp paths all inside DIR (--local DIR), for
                               an nginx run by an unprivileged user or a test: `nginx -p DIR -c FILE`

  python deploy/render_nginx.py --hub 10.0.0.11:8000:50051 --hub 10.0.0.12:8000:50051 -o /etc/nginx/nginx.conf
"""

from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass
from pathlib import Path

SHIPPED = Path(__file__).with_name("nginx.conf")
BLOCKS = ("main", "logs", "http_servers", "grpc_servers", "listen_http", "listen_grpc")
_BEGIN = re.compile(r"^(?P<indent>\s*)# render: (?P<name>\w+)\s*$")
_END = re.compile(r"^\s*# end render\s*$")
#: passive health: a node that failed this often is left out for this long
SERVER_OPTS = "max_fails=3 fail_timeout=10s"


class RenderError(ValueError):
    pass


@dataclass(frozen=True)
class Hub:
    host: str
    http_port: int
    grpc_port: int

    @classmethod
    def parse(cls, text: str) -> Hub:
        host, sep, rest = text.rpartition(":")
        host2, sep2, http = host.rpartition(":")
        if not (sep and sep2 and host2 and http.isdigit() and rest.isdigit()):
            raise RenderError(f"--hub {text!r}: expected HOST:HTTP_PORT:GRPC_PORT")
        return cls(host2, int(http), int(rest))


def _listen(value: str) -> str:
    addr, _, port = value.rpartition(":")
    if not port.isdigit():
        raise RenderError(f"listen address {value!r}: expected [ADDR:]PORT")
    return f"{addr}:{port}" if addr else port


def blocks_for(hubs: list[Hub] | None = None, listen: str | None = None, grpc_listen: str | None = None,
               local: Path | None = None) -> dict[str, list[str]]:
    """The replacement lines of each block the options decide (blocks not named stay as shipped)."""
    out: dict[str, list[str]] = {}
    if hubs is not None:
        if not hubs:
            raise RenderError("at least one --hub is needed")
        out["http_servers"] = [f"server {h.host}:{h.http_port} {SERVER_OPTS};" for h in hubs]
        out["grpc_servers"] = [f"server {h.host}:{h.grpc_port} {SERVER_OPTS};" for h in hubs]
    if listen is not None:
        out["listen_http"] = [f"listen {_listen(listen)};"]
    if grpc_listen is not None:
        out["listen_grpc"] = [f"listen {_listen(grpc_listen)} http2;"]
    if local is not None:
        d = local.resolve()
        out["main"] = [f"pid {d / 'nginx.pid'};", f"error_log {d / 'error.log'} notice;"]
        out["logs"] = [f"access_log {d / 'access.log'} asrhub;"] + [
            f"{kind}_temp_path {d / ('temp-' + kind)};"
            for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")]
    return out


def render(text: str, blocks: dict[str, list[str]]) -> str:
    """`text` with the lines of every named block replaced (indented like its marker)."""
    unknown = set(blocks) - set(BLOCKS)
    if unknown:
        raise RenderError(f"unknown render blocks: {sorted(unknown)}")
    lines = text.splitlines(keepends=True)
    out: list[str] = []
    seen: set[str] = set()
    i = 0
    while i < len(lines):
        m = _BEGIN.match(lines[i])
        if m is None:
            out.append(lines[i])
            i += 1
            continue
        name, indent = m["name"], m["indent"]
        if name not in BLOCKS:
            raise RenderError(f"line {i + 1}: unknown render block {name!r}")
        end = next((j for j in range(i + 1, len(lines)) if _END.match(lines[j])), None)
        if end is None:
            raise RenderError(f"line {i + 1}: render block {name!r} has no '# end render'")
        out.append(lines[i])
        if name in blocks:
            out.extend(f"{indent}{line}\n" for line in blocks[name])
        else:
            out.extend(lines[i + 1:end])
        out.append(lines[end])
        seen.add(name)
        i = end + 1
    missing = set(blocks) - seen
    if missing:
        raise RenderError(f"render blocks not in the file: {sorted(missing)}")
    return "".join(out)


def _hub_arg(text: str) -> Hub:
    try:
        return Hub.parse(text)
    except RenderError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--hub", action="append", type=_hub_arg, metavar="HOST:HTTP_PORT:GRPC_PORT",
                   help="a hub node (repeat for each node); default: as in the file (hub1, hub2)")
    p.add_argument("--listen", metavar="[ADDR:]PORT", help="public HTTP listener (default 8000)")
    p.add_argument("--grpc-listen", metavar="[ADDR:]PORT", help="public gRPC listener (default 50051)")
    p.add_argument("--local", type=Path, metavar="DIR",
                   help="pid, logs and temp files in DIR (run as `nginx -p DIR -c FILE`)")
    p.add_argument("--input", type=Path, default=SHIPPED, help="the config to render (default: the shipped one)")
    p.add_argument("-o", "--output", type=Path, help="write here (default: stdout)")
    try:
        args = p.parse_args(argv)
        text = render(args.input.read_text(), blocks_for(args.hub, args.listen, args.grpc_listen, args.local))
    except RenderError as e:
        print(f"render_nginx: {e}", file=sys.stderr)
        return 2
    if args.local is not None:
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
            (args.local / f"temp-{kind}").mkdir(parents=True, exist_ok=True)
    if args.output is None:
        sys.stdout.write(text)
    else:
        args.output.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
