"""`asrhub serve | transcribe | providers | config check | config init` (also `python -m asrhub`).

Settings combine in this order, later ones winning: built-in defaults < the config file (`--config`,
else `ASRHUB_CONFIG`, else the embedded default) < `ASRHUB_<SECTION>__<KEY>` environment variables <
command-line flags (`serve --host/--port/--grpc-port/--log-level/--log-json`).
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
from .core.version import VERSION as __version__


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
    from .api.ports import check_ports
    from .core.logs import configure_logging

    cfg = _load(args.config)
    if args.host:
        cfg.server.host = args.host
    if args.port is not None:
        cfg.server.port = args.port
    if args.grpc_port is not None:
        cfg.server.grpc_port = args.grpc_port
    if args.log_json:
        cfg.logging.json_format = True
    configure_logging(cfg.logging, args.log_level)
    try:
        check_bind(cfg.server)
        check_ports(cfg.server)
    except HubError as e:
        print(f"asrhub: {e.message}", file=sys.stderr)
        return 2
    app = create_app(cfg)
    tls = cfg.server.tls
    # log_config=None: uvicorn's records go to the hub's own handler (text or JSON, tokens redacted)
    server = DrainingServer(uvicorn.Config(app, host=cfg.server.host, port=cfg.server.port, http=_http_protocol(cfg),
                                           log_config=None, log_level=cfg.logging.level.lower(),
                                           ws=_ws_protocol(), ws_max_size=16 * 1024 * 1024,
                                           h11_max_incomplete_event_size=cfg.server.max_header_bytes + 8192,
                                           timeout_graceful_shutdown=int(cfg.server.shutdown_grace_s) + 1,
                                           ssl_certfile=tls.cert if tls.enabled else None,
                                           ssl_keyfile=tls.key if tls.enabled else None))
    server.run()
    return 0 if server.started else 1  # e.g. a port taken after the checks: uvicorn logged why


def _ws_protocol() -> Any:
    """uvicorn's websockets protocol, answering a text frame that is not UTF-8 (api.ws_protocol)."""
    from .api.ws_protocol import Utf8CheckedProtocol
    return Utf8CheckedProtocol


def _http_protocol(cfg: HubConfig) -> Any:
    """httptools with a bound on what a request head may take (api.http_protocol); h11 (bounded by its
    h11_max_incomplete_event_size) where httptools is not installed."""
    try:
        from .api.http_protocol import capped_protocol
    except ImportError:
        return "h11"
    return capped_protocol(cfg.server.max_header_bytes, cfg.server.header_timeout_s)


#: After a drain, the longest shutdown waits for connections that carry a session to send `session.ended`
#: and finish on their own (it goes on as soon as every one has).
TRANSPORT_FLUSH_S = 0.3


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
                await self._transports_drained()
            finally:
                super().handle_exit(sig, frame)

        async def _transports_drained(self) -> None:
            """Every session has its `session.ended` now: wait for the connections that carry a session to
            send it and finish (a WebSocket closes with 1000, an SSE stream ends), each request's own task
            ending, before uvicorn closes what is left. Connections that outlive their session (Socket.IO,
            a Realtime socket, one that never started a session) are given TRANSPORT_FLUSH_S, no more."""
            tasks = set(self.server_state.tasks)
            if tasks:
                await asyncio.wait(tasks, timeout=TRANSPORT_FLUSH_S)

        async def startup(self, sockets: Any = None) -> None:
            self._loop = asyncio.get_running_loop()
            await super().startup(sockets)

    return DrainingServer


def DrainingServer(config: Any) -> Any:  # noqa: N802
    return _draining_server_class()(config)


def cmd_transcribe(args: argparse.Namespace) -> int:
    from .engine.transcribe import transcribe_files
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
    from .engine.provider_check import describe_providers, unavailable_in

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
    if not args.check:
        return 0
    missing = unavailable_in(cfg.providers, rows)
    for u in missing:  # a hub on this config would not be ready: say which and how to fix it
        print(f"asrhub: {u.describe()}. Fix: {u.fix}", file=sys.stderr)
    failed = any(r.get("check") and not r["check"]["ok"] for r in rows)
    return 1 if failed or missing else 0


def cmd_config_check(args: argparse.Namespace) -> int:
    """Validate, print the effective config (provider options with their defaults), then load the
    default and routed providers and the operators the pipeline needs (the Silero VAD, the turn model): exit 1
    when one cannot load (the hub would serve nothing there)."""
    import yaml

    from .core.config import effective_config, mask_secrets
    from .engine.provider_check import effective_provider_options, load_required
    from .operators.requirements import load_required as load_operators

    if args.file and args.config_flag and args.file != args.config_flag:
        print("asrhub: config check takes one file: FILE or --config, not both", file=sys.stderr)
        return 2
    cfg = _load(args.file or args.config_flag)
    shown = effective_config(cfg)
    shown["providers"]["instances"] = mask_secrets(effective_provider_options(cfg.providers))
    print(f"# {cfg.source}: valid. Effective config (defaults < file < ASRHUB_* env), secrets masked:",
          file=sys.stderr)
    sys.stdout.write(yaml.safe_dump(shown, sort_keys=False, allow_unicode=True))
    if args.no_load:
        return 0
    logging.basicConfig(level=logging.CRITICAL)  # a failed load is reported below, once, with its fix
    loaded, missing = asyncio.run(load_required(cfg))
    for name, status in loaded:
        print(f"# provider '{name}': {status}" + ("" if status == "available" else " (providers.fallback takes its "
                                                   "sessions meanwhile)"), file=sys.stderr)
    for u in missing:
        print(f"asrhub: {u.describe()}. Fix: {u.fix}", file=sys.stderr)
    operators = load_operators(cfg.pipeline)
    for o in operators:
        print(f"asrhub: {o.describe()}. Fix: {o.fix}", file=sys.stderr)
    return 1 if missing or operators else 0


def cmd_config_init(args: argparse.Namespace) -> int:
    """Write the commented example config (every key with its default) to PATH."""
    from .core.resources import resource

    target = Path(args.path)
    if target.exists() and not args.force:
        print(f"asrhub: {target} exists; not overwritten (--force replaces it)", file=sys.stderr)
        return 1
    try:
        target.write_text(resource("config/config.example.yaml").read_text(encoding="utf-8"), encoding="utf-8")
    except OSError as e:
        print(f"asrhub: cannot write {target}: {e.strerror}", file=sys.stderr)
        return 1
    print(f"# wrote {target}: edit it, then `asrhub config check {target}` and "
          f"`asrhub serve --config {target}`", file=sys.stderr)
    return 0


CONFIG_HELP = "YAML config file (default: $ASRHUB_CONFIG, else the embedded config)"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="asrhub", description="ASR Hub: one server, many speech recognisers.")
    p.add_argument("--version", action="version", version=f"asrhub {__version__}",
                   help="print the version and exit")
    sub = p.add_subparsers(dest="cmd", required=True, metavar="COMMAND")
    s = sub.add_parser("serve", help="run the hub", description="Run the hub: HTTP (WebSocket, SSE, Socket.IO, "
                       "REST, OpenAI routes, demo page) and gRPC. Flags override the config.")
    s.add_argument("--config", help=CONFIG_HELP)
    s.add_argument("--host", help="bind address (overrides server.host; one other than loopback needs API keys)")
    s.add_argument("--port", type=int, help="HTTP port (overrides server.port)")
    s.add_argument("--grpc-port", type=int, help="gRPC port (overrides server.grpc_port)")
    s.add_argument("--log-level", type=str.upper, choices=["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"],
                   help="root log level (overrides logging.level)")
    s.add_argument("--log-json", action="store_true",
                   help="one JSON object per log line on stderr (overrides logging.json)")
    s.set_defaults(fn=cmd_serve)
    t = sub.add_parser("transcribe", help="transcribe audio files",
                       description="Transcribe whole files with the configured providers, no server needed.")
    t.add_argument("files", nargs="+", metavar="FILE", help="audio files (any format PyAV decodes)")
    t.add_argument("--config", help=CONFIG_HELP)
    t.add_argument("--provider", help="provider name from the config (default: routed by --language, else "
                                      "providers.default)")
    t.add_argument("--language", help="BCP-47 tag (en, zh-TW, ...) or auto; default: the provider's own")
    t.add_argument("--format", choices=["text", "json", "srt", "vtt"], default="text",
                   help="output format (default: text)")
    t.add_argument("--quiet", action="store_true", help="no progress bar")
    t.set_defaults(fn=cmd_transcribe)
    pr = sub.add_parser("providers", help="list providers and their status")
    pr.add_argument("--config", help=CONFIG_HELP)
    pr.add_argument("--json", action="store_true", help="print the list as JSON")
    pr.add_argument("--check", action="store_true",
                    help="also probe each available provider with a short decode (exit 1 if one fails, or "
                         "if the default or a routed provider is unavailable)")
    pr.set_defaults(fn=cmd_providers)
    c = sub.add_parser("config", help="configuration tools (check, init)")
    csub = c.add_subparsers(dest="config_cmd", required=True, metavar="ACTION")
    cc = csub.add_parser("check", help="validate a config file and print the effective config, secrets masked; "
                                       "exit 1 if the default or a routed provider cannot load")
    cc.add_argument("file", nargs="?", help="default: $ASRHUB_CONFIG, else the embedded config")
    cc.add_argument("--config", dest="config_flag", metavar="FILE",
                    help="the same as FILE (the flag serve, transcribe and providers take)")
    cc.add_argument("--no-load", action="store_true",
                    help="validate only: do not load the default and routed providers")
    cc.set_defaults(fn=cmd_config_check)
    ci = csub.add_parser("init", help="write the commented example config (every key with its default)")
    ci.add_argument("path", nargs="?", default="config.yaml", help="where to write it (default: ./config.yaml)")
    ci.add_argument("--force", action="store_true", help="overwrite an existing file")
    ci.set_defaults(fn=cmd_config_init)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.fn(args))
    except HubError as e:  # one line, never a traceback: the message names the problem
        print(f"asrhub: {e.message}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # Ctrl-C: `serve` has drained and stopped (uvicorn re-raises the signal after)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
