"""Offline API docs: /docs (Swagger UI) and /redoc served with assets shipped by the fastapi-offline package."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from fastapi import FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import HTMLResponse, Response
from fastapi.staticfiles import StaticFiles

ASSETS_URL = "/docs-assets"
# ReDoc's sidebar footer loads its logo from a CDN; the served bundle points it at the local favicon instead.
REDOC_CDN_LOGO = b"https://cdn.redoc.ly/redoc/logo-mini.svg"


def assets_dir() -> Path:
    """Swagger UI's bundle and CSS, ReDoc's standalone bundle and a favicon, as installed with fastapi-offline."""
    return Path(str(resources.files("fastapi_offline") / "static"))


def redoc_bundle(favicon: str) -> bytes:
    return (assets_dir() / "redoc.standalone.js").read_bytes().replace(REDOC_CDN_LOGO, favicon.encode())


def install_offline_docs(app: FastAPI) -> None:
    """The app must be built with docs_url=None and redoc_url=None; these routes replace FastAPI's CDN pages."""
    title = app.title
    openapi_url = app.openapi_url or "/openapi.json"
    favicon = f"{ASSETS_URL}/favicon.png"
    bundle: list[bytes] = []  # read on first use

    @app.get(f"{ASSETS_URL}/redoc.standalone.js", include_in_schema=False)
    async def redoc_js() -> Response:
        if not bundle:
            bundle.append(redoc_bundle(favicon))
        return Response(bundle[0], media_type="text/javascript", headers={"Cache-Control": "public, max-age=3600"})

    app.mount(ASSETS_URL, StaticFiles(directory=assets_dir()), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=openapi_url,
            title=f"{title} - Swagger UI",
            oauth2_redirect_url="/docs/oauth2-redirect",
            swagger_js_url=f"{ASSETS_URL}/swagger-ui-bundle.js",
            swagger_css_url=f"{ASSETS_URL}/swagger-ui.css",
            swagger_favicon_url=favicon,
        )

    @app.get("/docs/oauth2-redirect", include_in_schema=False)
    async def swagger_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    @app.get("/redoc", include_in_schema=False)
    async def redoc() -> HTMLResponse:
        return get_redoc_html(
            openapi_url=openapi_url,
            title=f"{title} - ReDoc",
            redoc_js_url=f"{ASSETS_URL}/redoc.standalone.js",
            redoc_favicon_url=favicon,
            with_google_fonts=False,
        )
