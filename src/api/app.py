"""App factory: one ASGI app with every HTTP/WebSocket transport, sharing one event loop.

`create_app(config)` is what `asrhub serve` runs. Called with no argument it is the public factory for
other ASGI servers: `uvicorn --factory asrhub.api.app:create_app` or gunicorn with uvicorn workers
(`-k uvicorn.workers.UvicornWorker 'asrhub.api.app:create_app()'`). It then reads the config the
same way as the CLI (`ASRHUB_CONFIG`, else the embedded default, then `ASRHUB_<SECTION>__<KEY>`); the
HTTP host and port are the server's own flags, gRPC listens on `server.grpc_port` (SO_REUSEPORT, so
several workers share it). Given a config (`asrhub serve`), the app's gRPC port is its own: a taken one is
an error.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.staticfiles import StaticFiles
from starlette.routing import BaseRoute, Mount, Route

from ..core.config import HubConfig, load_config
from ..core.logs import configure_logging, install_redaction
from ..core.resources import resource
from ..core.version import VERSION as __version__
from ..hub import Hub
from . import deepgram, openai_compat, openai_models, realtime, rest, sse, tokens, websocket
from .auth import AuthMiddleware
from .deepgram_prerecorded import router as deepgram_files
from .docs import install_docs
from .grpc import GrpcServer
from .http_guard import HeaderLimitMiddleware, HeadMiddleware, install_error_handlers
from .http_metrics import HttpMetricsMiddleware
from .openapi import install_openapi
from .socketio import create_socketio_app
from .ws_not_found import unknown_websocket

log = logging.getLogger(__name__)

FRONTEND_DIR = resource("frontend/realtime-streaming")  # its vendor/ holds the Socket.IO browser client


def create_app(config: HubConfig | None = None) -> FastAPI:
    shared_grpc_port = config is None  # the factory under another server: its workers share the port
    if config is None:  # under another ASGI server: the hub's own records get the hub's handler (text or
        config = load_config()  # JSON); the server's lines follow its own log config (uvicorn --log-config)
        configure_logging(config.logging)
    install_redaction()  # ?token= values never reach uvicorn's access or handshake log lines
    hub = Hub(config)
    grpc_server = GrpcServer(hub, shared_grpc_port) if config.server.grpc_enabled else None

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await hub.start()
        if grpc_server is not None:
            await grpc_server.start()  # same loop as uvicorn and Socket.IO
        try:
            yield
        finally:
            await hub.stop()  # sessions end with reason "shutdown" while gRPC can still deliver that
            if grpc_server is not None:
                await grpc_server.stop(grace=2.0)

    # /docs is served offline (api.docs); ReDoc would load from a CDN
    app = FastAPI(title="ASR Hub", version=__version__, lifespan=lifespan, docs_url=None, redoc_url=None)
    install_openapi(app, lambda: hub.config)  # /openapi.json says what the routes answer (api.openapi)
    app.state.hub = hub
    app.state.config = config
    app.add_middleware(AuthMiddleware, auth=hub.auth,  # (cluster: rate limits count across nodes)
                       cluster_rate=hub.cluster.rate_hit if hub.cluster is not None else None)  # inside CORS: preflights need no key
    app.add_middleware(CORSMiddleware, allow_origins=config.server.allowed_origins, allow_methods=["*"],
                       allow_headers=["*"])
    app.add_middleware(HeadMiddleware)  # HEAD = GET without the body, on every route and mount
    route_table: list[BaseRoute] = []  # filled below, once every route exists
    app.add_middleware(HttpMetricsMiddleware, metrics=hub.metrics, routes=route_table)  # outside auth: refusals count
    app.add_middleware(HeaderLimitMiddleware, max_bytes=config.server.max_header_bytes,
                       max_count=config.server.max_headers)  # outermost: before anything reads them
    install_error_handlers(app)
    routers = (rest.router, websocket.router, sse.router, tokens.router, openai_compat.router,
               openai_compat.native_router, openai_models.router, realtime.router, deepgram.router, deepgram_files)
    for router in routers:
        app.include_router(router)
    app.state.grpc = grpc_server
    app.state.sio, sio_app = create_socketio_app(hub.service, config, hub.auth)
    app.mount("/socket.io", sio_app, name="socketio")
    install_docs(app)
    # a WebSocket to any other path: 404 with the contract body, as over HTTP (after every route and mount
    # that takes WebSockets, before the static files, which serve HTTP only)
    app.add_api_websocket_route("/{path:path}", unknown_websocket, name="unknown_websocket")
    # every route by its own path and methods (what a 405's Allow lists: http_guard.allowed_methods)
    app.state.routes = [r for router in routers for r in router.routes] + [
        r for r in app.router.routes if isinstance(r, Route)]
    frontend = Path(config.server.frontend_dir) if config.server.frontend_dir else FRONTEND_DIR
    if frontend.is_dir():
        app.mount("/", StaticFiles(directory=frontend, html=True), name="frontend")
    # what refused requests (never routed) are matched against for their metrics label
    route_table.extend(r for router in (rest.router, websocket.router, sse.router, openai_compat.router)
                       for r in router.routes)
    route_table.extend(r for r in app.router.routes if isinstance(r, Mount))
    return app
