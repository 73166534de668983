"""GET /docs: Swagger UI for /openapi.json, served from the files of the swagger-ui-bundle-v2 package
(no CDN: the page works on a machine with no internet). ReDoc, which only loads from a CDN, is off."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from swagger_ui_bundle import swagger_ui_path

DOCS_URL = "/docs"
STATIC_URL = "/docs/static"


def install_docs(app: FastAPI) -> None:
    """The page and its files (call before any mount at "/", which would take their paths)."""
    app.mount(STATIC_URL, StaticFiles(directory=str(swagger_ui_path)), name="swagger-ui")

    @app.get(DOCS_URL, include_in_schema=False)
    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(openapi_url=app.openapi_url or "/openapi.json", title=f"{app.title} - API",
                                   swagger_js_url=f"{STATIC_URL}/swagger-ui-bundle.js",
                                   swagger_css_url=f"{STATIC_URL}/swagger-ui.css",
                                   swagger_favicon_url=f"{STATIC_URL}/favicon-32x32.png")
