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
from . import rest, websocket

log = logging.getLogger(__name__)

FRONTEND_DIR = Path(__file__).resolve().parent.parent.parent / "frontend" / "realtime-streaming"


def create_app(config: HubConfig) -> FastAPI:
    hub = Hub(config)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await hub.start()
        try:
            yield
        finally:
            await hub.stop()

    app = FastAPI(title="ASR Hub", version=__version__, lifespan=lifespan)
    app.state.hub = hub
    app.state.config = config
    app.add_middleware(CORSMiddleware, allow_origins=config.server.allowed_origins, allow_methods=["*"],
                       allow_headers=["*"])
    app.include_router(rest.router)
    app.include_router(websocket.router)
    frontend = Path(config.server.frontend_dir) if config.server.frontend_dir else FRONTEND_DIR
    vendor = frontend / "node_modules" / "socket.io-client" / "dist"
    if vendor.is_dir():
        app.mount("/vendor", StaticFiles(directory=vendor), name="vendor")
    if frontend.is_dir():
        app.mount("/", StaticFiles(directory=frontend, html=True), name="frontend")
    return app
