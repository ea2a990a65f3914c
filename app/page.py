"""The web page at GET /: paste a text, pick tasks, read the assessment (app/static/).

One static HTML page with a same-origin script and stylesheet: no CDN, no build step, no inline script
or style, so it works offline and under `Content-Security-Policy: default-src 'self'`. The page talks
to the same JSON API as every other client (GET /tasks, POST /assess, GET /readyz); the server fills in
only whether an API key is needed, the text limit and the disclaimer. The page stores nothing: no
cookies, no local storage; the text and the key live in the page's form fields only.
"""

from __future__ import annotations

import html
from functools import cache
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, HTMLResponse

from app.errors import ServiceError
from mental_r1.safety import DISCLAIMER

router = APIRouter()
STATIC = Path(__file__).parent / "static"
_ASSETS = {"page.js": "text/javascript; charset=utf-8", "page.css": "text/css; charset=utf-8",
           "favicon.svg": "image/svg+xml"}
_NO_STORE = {"Cache-Control": "no-store"}


@cache
def _template() -> str:
    return (STATIC / "index.html").read_text(encoding="utf-8")


def render_page(key_required: bool, max_chars: int) -> str:
    return (_template().replace("{{KEY_REQUIRED}}", "true" if key_required else "false")
            .replace("{{MAX_CHARS}}", str(max_chars)).replace("{{DISCLAIMER}}", html.escape(DISCLAIMER)))


@router.get("/", response_class=HTMLResponse, include_in_schema=False)
async def page(request: Request):
    settings = request.app.state.settings
    return HTMLResponse(render_page(bool(settings.key_hashes), settings.max_text_chars), headers=_NO_STORE)


@router.get("/static/{name}", include_in_schema=False)
async def asset(name: str):
    if name not in _ASSETS:
        raise ServiceError(404, "not found")
    return FileResponse(STATIC / name, media_type=_ASSETS[name])
