"""Security headers on every HTTP answer, and the one table of what our HTML pages may load.

Every answer gets ``X-Content-Type-Options: nosniff``, ``Referrer-Policy:
no-referrer``, ``X-Frame-Options: DENY`` and a Content-Security-Policy; one
that sets no ``Cache-Control`` gets ``no-store`` (API answers carry tokens and
mail; nothing here is meant for a shared cache).

Answers other than the pages in :data:`PAGES` (JSON, .eml downloads,
attachments) get a policy that allows nothing: a browser that opens one runs
no script and loads nothing. The two HTML pages, Swagger UI at ``/api/docs``
and GraphiQL at ``/graphql``, load their scripts and styles from public CDNs
today; :data:`PAGES` lists exactly those files, and their inline scripts are
allowed by hash, computed from the page as it is served. When the pages are
served from local files, this table is the one place to change.
"""

from __future__ import annotations

import base64
import hashlib
import re
from dataclasses import dataclass

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

# Every answer, whatever it is.
COMMON_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}
NO_STORE = "no-store"
# JSON, downloads, anything but the pages below: nothing may run or load.
LOCKED_DOWN = "default-src 'none'; frame-ancestors 'none'; sandbox"
# What the HTTP listener's own refusals (414, 431) carry: they never reach the app.
EDGE_HEADERS = {
    **COMMON_HEADERS,
    "Cache-Control": NO_STORE,
    "Content-Security-Policy": LOCKED_DOWN,
}

SWAGGER_UI = "https://cdn.jsdelivr.net/npm/swagger-ui-dist@5/"
UNPKG = "https://unpkg.com/"


@dataclass(frozen=True)
class Page:
    """What one HTML page loads from elsewhere (CSP source expressions)."""

    scripts: tuple[str, ...]
    styles: tuple[str, ...]
    images: tuple[str, ...] = ()
    fonts: tuple[str, ...] = ()


# GET pages by path. 'self' for data: the page fetches the schema and calls the API
# (GraphiQL also opens its WebSocket there). Inline styles: both UIs set style
# attributes on the elements they draw.
PAGES: dict[str, Page] = {
    "/api/docs": Page(  # FastAPI's Swagger UI page
        scripts=(f"{SWAGGER_UI}swagger-ui-bundle.js",),
        styles=(f"{SWAGGER_UI}swagger-ui.css", "'unsafe-inline'"),
        images=("https://fastapi.tiangolo.com/img/favicon.png", "data:"),
    ),
    "/graphql": Page(  # Strawberry's GraphiQL page
        scripts=(
            f"{UNPKG}react@18.2.0/umd/react.production.min.js",
            f"{UNPKG}react-dom@18.2.0/umd/react-dom.production.min.js",
            f"{UNPKG}js-cookie@3.0.5/dist/js.cookie.min.js",
            f"{UNPKG}graphiql@3.8.3/graphiql.min.js",
            f"{UNPKG}@graphiql/plugin-explorer@1.0.2/dist/index.umd.js",
        ),
        styles=(
            f"{UNPKG}graphiql@3.8.3/graphiql.min.css",
            f"{UNPKG}@graphiql/plugin-explorer@1.0.2/dist/style.css",
            "'unsafe-inline'",
        ),
        images=("data:",),
        fonts=("data:",),  # GraphiQL's stylesheet carries its fonts inline
    ),
}

_INLINE_SCRIPT = re.compile(rb"<script>(.*?)</script>", re.DOTALL)


def inline_script_hashes(html: bytes) -> list[str]:
    """CSP hash sources of the page's inline scripts (``<script>`` without attributes)."""
    return [
        "'sha256-" + base64.b64encode(hashlib.sha256(body).digest()).decode("ascii") + "'"
        for body in _INLINE_SCRIPT.findall(html)
    ]


def page_policy(page: Page, html: bytes) -> str:
    """The Content-Security-Policy of one page: its files, its inline scripts, nothing else."""
    directives = [
        "default-src 'none'",
        "script-src " + " ".join((*page.scripts, *inline_script_hashes(html))),
        "style-src " + " ".join(page.styles),
        "connect-src 'self'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    ]
    if page.images:
        directives.append("img-src " + " ".join(page.images))
    if page.fonts:
        directives.append("font-src " + " ".join(page.fonts))
    return "; ".join(directives)


class SecurityHeadersMiddleware:
    """Adds the headers above to every HTTP answer (see the module)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        page = PAGES.get(scope["path"]) if scope["method"] in ("GET", "HEAD") else None
        held: Message | None = None  # an HTML page's head waits for its body (the hashes)
        body = bytearray()

        async def send_with_headers(message: Message) -> None:
            nonlocal held
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in COMMON_HEADERS.items():
                    headers[name] = value
                headers.setdefault("Cache-Control", NO_STORE)
                if page is not None and headers.get("content-type", "").startswith("text/html"):
                    held = message
                    return
                headers["Content-Security-Policy"] = LOCKED_DOWN
                await send(message)
                return
            if held is not None and message["type"] == "http.response.body":
                body.extend(message.get("body", b""))
                if message.get("more_body", False):
                    return
                assert page is not None  # noqa: S101 - held only for a page
                MutableHeaders(scope=held)["Content-Security-Policy"] = page_policy(
                    page, bytes(body)
                )
                await send(held)
                held = None
                await send({"type": "http.response.body", "body": bytes(body)})
                return
            await send(message)

        await self.app(scope, receive, send_with_headers)
