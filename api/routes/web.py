"""The web page: owner view at `/`, audit view at `/audit/{cid}`, and its static files.

Everything the page needs is in `api/web/` and served from here: no CDN, no external fonts.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse

from api.errors import ApiError

WEB_DIR = Path(__file__).resolve().parent.parent / "web"
_STATIC = {
    "app.js": "text/javascript",
    "lineage.js": "text/javascript",
    "style.css": "text/css",
    "favicon.svg": "image/svg+xml",
}
# The page may only load what this service serves; inline scripts and third-party origins are refused.
_CSP = "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'"

router = APIRouter(include_in_schema=False)


def _page() -> FileResponse:
    return FileResponse(
        WEB_DIR / "index.html",
        media_type="text/html",
        headers={"Content-Security-Policy": _CSP, "Cache-Control": "no-cache"},
    )


@router.get("/")
def owner_page() -> FileResponse:
    """The owner view: datasets and grants of an address."""
    return _page()


@router.get("/audit/{cid}")
def audit_page(cid: str) -> FileResponse:
    """The audit view of a model (the page fetches `/v1/audit/models/{cid}`)."""
    return _page()


@router.get("/favicon.ico")
def favicon() -> FileResponse:
    """Browsers ask for it whatever the page says."""
    return FileResponse(WEB_DIR / "favicon.svg", media_type="image/svg+xml")


@router.get("/static/{name}")
def static_file(name: str) -> FileResponse:
    """The page's own script and stylesheet."""
    media_type = _STATIC.get(name)
    if media_type is None:
        raise ApiError(404, "not_found", f"no static file {name!r}")
    return FileResponse(WEB_DIR / name, media_type=media_type, headers={"Cache-Control": "no-cache"})
