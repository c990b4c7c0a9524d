"""The web UI's built files (``mailcue_server/api/webui``, built from ``web/``), served like
Mailpit serves its embed.

- ``/assets/<name>``: the build's files; their names carry a content hash, so browsers keep
  them for a year without asking again (``Cache-Control: immutable``).
- Any other GET that no route answers and that is not under ``/api``, ``/graphql`` or
  ``/.well-known``: the app's ``index.html`` (``no-cache``: always checked, so a new build is
  picked up at once), which routes on the client (``/mail/...``, ``/signin``).
- GraphiQL (``/graphql``) and Swagger UI (``/api/docs``) are pages of the same build; see
  :func:`page_response`.

Only what no route matched reaches this code (it wraps the router's ``default``), so a
wrong method on an API route still answers 405 and unknown API paths keep their JSON 404.
"""

from __future__ import annotations

import mimetypes
from functools import cache
from html import escape as html_escape
from importlib import resources
from pathlib import Path

from starlette.responses import FileResponse, HTMLResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from mailcue_server.api.security_headers import APP_PAGE, Page, page_policy

BUILD_DIR = Path(str(resources.files("mailcue_server.api"))) / "webui"
ASSETS_PREFIX = "/assets/"
IMMUTABLE = "public, max-age=31536000, immutable"
NO_CACHE = "no-cache"
# Never the app's index.html: these paths belong to the APIs (their 404 stays JSON).
NOT_UI = ("/api", "/graphql", "/.well-known", "/assets")
# Files at the build's root that are not pages.
ROOT_FILES = {"/favicon.svg"}

mimetypes.add_type("text/javascript", ".js")
mimetypes.add_type("image/svg+xml", ".svg")


class BuildMissing(RuntimeError):
    """The package carries no web UI build (``web/`` was never built into it)."""


@cache
def _page(name: str) -> bytes:
    path = BUILD_DIR / name
    if not path.is_file():
        raise BuildMissing(f"{path} is missing: run `npm ci && npm run build` in web/")
    return path.read_bytes()


def page_response(name: str, page: Page = APP_PAGE) -> HTMLResponse:
    """One of the build's HTML pages (``index.html``, ``graphiql.html``, ``swagger.html``)
    with the policy of what it loads."""
    try:
        html = _page(name)
    except BuildMissing as exc:
        return HTMLResponse(html_escape(str(exc)), status_code=503)
    return HTMLResponse(
        html,
        headers={
            "Cache-Control": NO_CACHE,
            "Content-Security-Policy": page_policy(page, html),
        },
    )


def _is_under(path: str, prefix: str) -> bool:
    return path == prefix or path.startswith(prefix + "/")


def _file(path: str, cache_control: str) -> Response | None:
    """A file of the build, or None when there is none at ``path``."""
    relative = path.lstrip("/")
    if not relative or any(part in ("", ".", "..") for part in relative.split("/")):
        return None
    target = BUILD_DIR / relative
    if not target.is_file():
        return None
    return FileResponse(target, headers={"Cache-Control": cache_control})


class UiFallback:
    """The router's answer when no route matched: a build file, the app's page, or the
    router's own 404."""

    def __init__(self, not_found: ASGIApp) -> None:
        self.not_found = not_found

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = self._answer(scope) if scope["type"] == "http" else None
        if response is None:
            await self.not_found(scope, receive, send)
        else:
            await response(scope, receive, send)

    @staticmethod
    def _answer(scope: Scope) -> Response | None:
        if scope["method"] not in ("GET", "HEAD"):
            return None
        path: str = scope["path"]
        if path.startswith(ASSETS_PREFIX):
            return _file(path, IMMUTABLE)
        if path in ROOT_FILES:
            return _file(path, "public, max-age=86400")
        if any(_is_under(path, prefix) for prefix in NOT_UI):
            return None
        return page_response("index.html")
