"""Security headers on every HTTP answer, and the one table of what our HTML pages may load.

Every answer gets ``X-Content-Type-Options: nosniff``, ``Referrer-Policy:
no-referrer``, ``X-Frame-Options: DENY`` and a Content-Security-Policy; one
that sets no ``Cache-Control`` gets ``no-store`` (API answers carry tokens and
mail; nothing here is meant for a shared cache).

Answers that set no policy of their own and are not one of the pages in
:data:`PAGES` (JSON, .eml downloads, attachments) get a policy that allows
nothing: a browser that opens one runs no script and loads nothing. The web
UI's pages (the app, Swagger UI at ``/api/docs``, GraphiQL at ``/graphql``)
come from the server's own build (``api/static_ui.py``): scripts from this
origin only, no inline script, never framed; the app's page sets
:data:`APP_PAGE`'s policy itself, since it answers at any client route.
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


@dataclass(frozen=True)
class Page:
    """What one HTML page may load (CSP source expressions)."""

    scripts: tuple[str, ...]
    styles: tuple[str, ...]
    images: tuple[str, ...] = ()
    fonts: tuple[str, ...] = ()


# Swagger UI and GraphiQL: our own files. 'self' for data: the page fetches the schema and
# calls the API (GraphiQL also opens its WebSocket there). Inline styles: both UIs set style
# attributes on the elements they draw.
TOOL_PAGE = Page(
    scripts=("'self'",),
    styles=("'self'", "'unsafe-inline'"),
    images=("'self'", "data:"),
    fonts=("'self'", "data:"),
)

# The app. A message's HTML is shown in a sandboxed srcdoc frame, which inherits this
# policy on top of its own (no scripts; remote images only once the user asks): so this
# one allows inline styles and images from anywhere, and still no script but ours.
APP_PAGE = Page(
    scripts=("'self'",),
    styles=("'self'", "'unsafe-inline'", "http:", "https:"),
    images=("'self'", "data:", "blob:", "http:", "https:"),
    fonts=("'self'", "data:", "http:", "https:"),
)

# GET pages by path.
PAGES: dict[str, Page] = {"/api/docs": TOOL_PAGE, "/graphql": TOOL_PAGE}

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
                # Only our own page answers set a policy (static_ui); the rest get none but this.
                headers.setdefault("Content-Security-Policy", LOCKED_DOWN)
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
