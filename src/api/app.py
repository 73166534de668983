"""App factory: one ASGI app with every HTTP/WebSocket transport, sharing one event loop."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.staticfiles import StaticFiles

from .. import __version__
from ..core.config import HubConfig
from ..core.hub import Hub
from . import openai_compat, openai_models, realtime, rest, sse, websocket
from .auth import AuthMiddleware
from .grpc import GrpcServer
from .socketio import create_socketio_app

log = logging.getLogger(__name__)

FRONTEND_DIR = Path(__file__).resolve().parent.parent.parent / "frontend" / "realtime-streaming"


def create_app(config: HubConfig) -> FastAPI:
    hub = Hub(config)
    grpc_server = GrpcServer(hub) if config.server.grpc_enabled else None

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

    app = FastAPI(title="ASR Hub", version=__version__, lifespan=lifespan)
    app.state.hub = hub
    app.state.config = config
    app.add_middleware(AuthMiddleware, auth=hub.auth)  # inside CORS: preflights need no key
    app.add_middleware(CORSMiddleware, allow_origins=config.server.allowed_origins, allow_methods=["*"],
                       allow_headers=["*"])
    app.include_router(rest.router)
    app.include_router(websocket.router)
    app.include_router(sse.router)
    app.include_router(openai_compat.router)
    app.include_router(openai_compat.native_router)
    app.include_router(openai_models.router)
    app.include_router(realtime.router)
    app.state.grpc = grpc_server
    app.state.sio, sio_app = create_socketio_app(hub.service, config, hub.auth)
    app.mount("/socket.io", sio_app, name="socketio")
    frontend = Path(config.server.frontend_dir) if config.server.frontend_dir else FRONTEND_DIR
    vendor = frontend / "node_modules" / "socket.io-client" / "dist"
    if vendor.is_dir():
        app.mount("/vendor", StaticFiles(directory=vendor), name="vendor")
    if frontend.is_dir():
        app.mount("/", StaticFiles(directory=frontend, html=True), name="frontend")
    return app
