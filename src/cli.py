"""`asrhub serve | transcribe | providers | config check`.

Settings combine in this order, later ones winning: built-in defaults < the config file (`--config`,
else `ASRHUB_CONFIG`, else the embedded default) < `ASRHUB_<SECTION>__<KEY>` environment variables <
command-line flags (`serve --host/--port/--grpc-port/--log-level`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from pathlib import Path
from typing import Any

from .core.auth import check_bind
from .core.config import ConfigError, HubConfig, load_config
from .core.errors import HubError


def _load(path: str | None) -> HubConfig:
    try:
        cfg = load_config(path)
        from .providers.registry import validate_providers
        validate_providers(cfg.providers)  # typed provider options: a misspelt key stops here, named
        return cfg
    except ConfigError as e:
        print(f"asrhub: {e}", file=sys.stderr)
        raise SystemExit(2) from None


def cmd_serve(args: argparse.Namespace) -> int:
    from .core.memory import single_threaded_blas, tune_malloc

    tune_malloc()  # before any worker thread exists
    single_threaded_blas()  # before numpy is imported

    import uvicorn

    from .api.app import create_app
    from .core.logs import configure_logging

    cfg = _load(args.config)
    if args.host:
        cfg.server.host = args.host
    if args.port is not None:
        cfg.server.port = args.port
    if args.grpc_port is not None:
        cfg.server.grpc_port = args.grpc_port
    configure_logging(cfg.logging, args.log_level)
    try:
        check_bind(cfg.server)
    except HubError as e:
        print(f"asrhub: {e.message}", file=sys.stderr)
        return 2
    app = create_app(cfg)
    tls = cfg.server.tls
    # log_config=None: uvicorn's records go to the hub's own handler (text or JSON, tokens redacted)
    server = DrainingServer(uvicorn.Config(app, host=cfg.server.host, port=cfg.server.port, http=_http_protocol(cfg),
                                           log_config=None, log_level=cfg.logging.level.lower(),
                                           ws_max_size=16 * 1024 * 1024,
                                           h11_max_incomplete_event_size=cfg.server.max_header_bytes + 8192,
                                           timeout_graceful_shutdown=int(cfg.server.shutdown_grace_s) + 1,
                                           ssl_certfile=tls.cert if tls.enabled else None,
                                           ssl_keyfile=tls.key if tls.enabled else None))
    server.run()
    return 0


def _http_protocol(cfg: HubConfig) -> Any:
    """httptools with a bound on what a request head may take (api.http_protocol); h11 (bounded by its
    h11_max_incomplete_event_size) where httptools is not installed."""
    try:
        from .api.http_protocol import capped_protocol
    except ImportError:
        return "h11"
    return capped_protocol(cfg.server.max_header_bytes, cfg.server.header_timeout_s)


def _draining_server_class() -> type:
    import uvicorn

    class DrainingServer(uvicorn.Server):
        """On the first SIGTERM/SIGINT: drain the hub (finalise utterances, send session.ended with
        reason shutdown) while connections are still open, then let uvicorn shut down. A second signal
        forces the exit."""

        _draining = False

        def handle_exit(self, sig: int, frame: Any) -> None:
            hub = getattr(self.config.app.state, "hub", None) if hasattr(self.config.app, "state") else None
            loop = getattr(self, "_loop", None)
            if self._draining or hub is None or loop is None or not self.started:
                super().handle_exit(sig, frame)
                return
            self._draining = True
            loop.call_soon_threadsafe(lambda: loop.create_task(self._drain_then_exit(hub, sig, frame)))

        async def _drain_then_exit(self, hub: Any, sig: int, frame: Any) -> None:
            try:
                await hub.drain()
                await asyncio.sleep(0.3)  # let transports flush session.ended
            finally:
                super().handle_exit(sig, frame)

        async def startup(self, sockets: Any = None) -> None:
            self._loop = asyncio.get_running_loop()
            await super().startup(sockets)

    return DrainingServer


def DrainingServer(config: Any) -> Any:  # noqa: N802
    return _draining_server_class()(config)


def cmd_transcribe(args: argparse.Namespace) -> int:
    from .core.transcribe import transcribe_files
    from .formats import format_segments

    cfg = _load(args.config)
    logging.basicConfig(level=logging.WARNING)
    results = asyncio.run(transcribe_files(cfg, [Path(f) for f in args.files], args.provider, args.language,
                                           progress=not args.quiet))
    status = 0
    for path, res in results:
        if isinstance(res, Exception):
            print(f"asrhub: {path}: {res}", file=sys.stderr)
            status = 1
            continue
        if args.format == "json":
            print(json.dumps({"file": str(path), **res.model_dump()}, ensure_ascii=False))
        else:
            if len(results) > 1 and args.format == "text":
                print(f"# {path}")
            sys.stdout.write(format_segments(res.segments, args.format))
    return status


def cmd_providers(args: argparse.Namespace) -> int:
    from .core.provider_check import describe_providers

    cfg = _load(args.config)
    logging.basicConfig(level=logging.WARNING)
    rows = asyncio.run(describe_providers(cfg, check=args.check))
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        for r in rows:
            caps = r["capabilities"] or {}
            flag = "*" if r["default"] else " "
            check = r.get("check")
            print(f"{flag} {r['name']:<16} {r['status']:<12} type={r['type']} model={r['model'] or '-'} "
                  f"streaming={caps.get('streaming', '-')} languages={','.join(caps.get('languages', [])) or '-'}"
                  + (f"  check={'ok' if check['ok'] else 'FAILED'} ({check['detail']})" if check else "")
                  + (f"  ({r['reason']})" if r["reason"] else ""))
    if args.check and any(r.get("check") and not r["check"]["ok"] for r in rows):
        return 1
    return 0


def cmd_config_check(args: argparse.Namespace) -> int:
    import yaml

    from .core.config import effective_config

    cfg = _load(args.file)
    print(f"# {cfg.source}: valid. Effective config (defaults < file < ASRHUB_* env), secrets masked:",
          file=sys.stderr)
    sys.stdout.write(yaml.safe_dump(effective_config(cfg), sort_keys=False, allow_unicode=True))
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="asrhub", description="ASR Hub: one server, many speech recognisers.")
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("serve", help="run the hub")
    s.add_argument("--config", help="YAML config file (default: $ASRHUB_CONFIG, else the embedded config)")
    s.add_argument("--host")
    s.add_argument("--port", type=int)
    s.add_argument("--grpc-port", type=int)
    s.add_argument("--log-level", type=str.upper, choices=["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"],
                   help="root log level (overrides logging.level)")
    s.set_defaults(fn=cmd_serve)
    t = sub.add_parser("transcribe", help="transcribe audio files")
    t.add_argument("files", nargs="+")
    t.add_argument("--config")
    t.add_argument("--provider")
    t.add_argument("--language")
    t.add_argument("--format", choices=["text", "json", "srt", "vtt"], default="text")
    t.add_argument("--quiet", action="store_true", help="no progress bar")
    t.set_defaults(fn=cmd_transcribe)
    pr = sub.add_parser("providers", help="list providers and their status")
    pr.add_argument("--config")
    pr.add_argument("--json", action="store_true")
    pr.add_argument("--check", action="store_true",
                    help="also probe each available provider with a short decode (exit 1 if one fails)")
    pr.set_defaults(fn=cmd_providers)
    c = sub.add_parser("config", help="configuration tools")
    csub = c.add_subparsers(dest="config_cmd", required=True)
    cc = csub.add_parser("check", help="validate a config file and print the effective config, secrets masked")
    cc.add_argument("file", nargs="?", help="default: $ASRHUB_CONFIG, else the embedded config")
    cc.set_defaults(fn=cmd_config_check)
    args = p.parse_args(argv)
    return int(args.fn(args))


if __name__ == "__main__":
    raise SystemExit(main())
