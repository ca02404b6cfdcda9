"""The dashboard at /ui: one HTML page and its JS/CSS from the app.ui package; data comes from the JSON API."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles

# Everything the page loads comes from this service: no CDN, no inline script.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
)


def static_dir() -> Path:
    return Path(str(resources.files("app.ui") / "static"))


def install_dashboard(app: FastAPI) -> None:
    """GET /ui serves the page; /ui/static/* its assets. Read-only: the page only reads the JSON API (and
    POST /route, which decides without running anything), sending the key the user typed in."""
    root = static_dir()
    app.mount("/ui/static", StaticFiles(directory=root), name="ui-static")
    headers = {"Content-Security-Policy": CSP, "Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"}

    @app.get("/ui", include_in_schema=False)
    async def dashboard() -> FileResponse:
        return FileResponse(root / "index.html", media_type="text/html", headers=headers)

    @app.get("/ui/", include_in_schema=False)
    async def dashboard_slash() -> RedirectResponse:
        return RedirectResponse("/ui", status_code=308)
