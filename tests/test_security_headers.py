"""Security headers on every answer; the HTML pages load only our own files."""

from __future__ import annotations

import asyncio
import base64
import hashlib
from html.parser import HTMLParser

import httpx
import pytest

from accounts import admin, new_mailbox
from conftest import ADMIN_PASSWORD, ADMIN_USER
from mailcue_server.app import MailcueServer

COMMON = {
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
}
LOCKED_DOWN = "default-src 'none'; frame-ancestors 'none'; sandbox"


def policy(header: str) -> dict[str, list[str]]:
    directives: dict[str, list[str]] = {}
    for directive in header.split(";"):
        name, *sources = directive.split()
        directives[name] = sources
    return directives


class PageLoads(HTMLParser):
    """What a browser would load for a page: script files, stylesheets, icons, inline scripts."""

    def __init__(self) -> None:
        super().__init__()
        self.scripts: list[str] = []
        self.styles: list[str] = []
        self.images: list[str] = []
        self.inline_scripts: list[str] = []
        self._in_inline_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "script":
            if found.get("src"):
                self.scripts.append(str(found["src"]))
            else:
                self._in_inline_script = True
                self.inline_scripts.append("")
        elif tag == "link":
            rel = str(found.get("rel", ""))
            href = str(found.get("href", ""))
            if "stylesheet" in rel:
                self.styles.append(href)
            elif "icon" in rel:
                self.images.append(href)

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_inline_script = False

    def handle_data(self, data: str) -> None:
        if self._in_inline_script:
            self.inline_scripts[-1] += data


def sha256_source(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


def assert_common(response: httpx.Response) -> None:
    for name, value in COMMON.items():
        assert response.headers.get(name) == value, (name, dict(response.headers))


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/api/v1/health", 200),
        ("GET", "/api/v1/auth/me", 401),
        ("GET", "/api/openapi.json", 200),
        ("GET", "/api/v1/no-such-route", 404),
        ("POST", "/api/v1/auth/login", 422),
    ],
)
async def test_json_answers_carry_the_headers(
    server: MailcueServer, http: httpx.AsyncClient, method: str, path: str, status: int
) -> None:
    response = await http.request(method, path)

    assert response.status_code == status, response.text[:200]
    assert_common(response)
    assert response.headers["content-security-policy"] == LOCKED_DOWN
    assert response.headers["cache-control"] == "no-store"


async def test_signed_in_answers_and_downloads_are_not_stored(
    server: MailcueServer, http: httpx.AsyncClient
) -> None:
    boss = await admin(http)
    address = await new_mailbox(http, boss)
    injected = await http.post(
        "/api/v1/emails/inject",
        headers=boss.headers,
        json={
            "mailbox": address,
            "from_address": "a@example.test",
            "to_addresses": [address],
            "subject": "<script>alert(1)</script>",
            "html_body": "<script>alert(1)</script>",
        },
    )
    assert injected.status_code == 201, injected.text

    for path in ("/api/v1/auth/me", f"/api/v1/emails/{injected.json()['uid']}/raw"):
        response = await http.get(path, headers=boss.headers, params={"mailbox": address})
        assert response.status_code == 200, response.text[:200]
        assert_common(response)
        assert response.headers["cache-control"] == "no-store"
        assert response.headers["content-security-policy"] == LOCKED_DOWN


async def test_the_login_answer_with_its_tokens_is_not_stored(
    server: MailcueServer, http: httpx.AsyncClient
) -> None:
    response = await http.post(
        "/api/v1/auth/login", json={"username": ADMIN_USER, "password": ADMIN_PASSWORD}
    )
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    assert_common(response)


@pytest.mark.parametrize(
    ("path", "style_sources"),
    [
        ("/api/docs", {"'self'", "'unsafe-inline'"}),
        ("/graphql", {"'self'", "'unsafe-inline'"}),
        # The app shows mail in a srcdoc frame, which inherits this policy (web UI).
        ("/", {"'self'", "'unsafe-inline'", "http:", "https:"}),
        ("/mail/alice%40example.com/INBOX/1", {"'self'", "'unsafe-inline'", "http:", "https:"}),
    ],
    ids=["swagger-ui", "graphiql", "app", "app-client-route"],
)
async def test_html_pages_load_only_our_own_files(
    server: MailcueServer, http: httpx.AsyncClient, path: str, style_sources: set[str]
) -> None:
    response = await http.get(path, headers={"Accept": "text/html"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert response.headers["cache-control"] == "no-cache"
    assert_common(response)
    csp = policy(response.headers["content-security-policy"])
    page = PageLoads()
    page.feed(response.text)
    page.close()

    assert csp["default-src"] == ["'none'"]
    assert csp["frame-ancestors"] == ["'none'"]
    assert csp["connect-src"] == ["'self'"]  # the API (and the WebSocket) only
    # Scripts from this server only; none inline, no eval.
    assert csp["script-src"] == ["'self'"]
    assert page.scripts and not page.inline_scripts
    assert set(csp["style-src"]) == style_sources
    # Every file the page names is ours, by path, and served for a year (hashed names).
    for url in page.scripts + page.styles:
        assert url.startswith("/assets/") and not url.startswith("//"), url
        asset = await http.get(url)
        assert asset.status_code == 200, url
        assert asset.headers["cache-control"] == "public, max-age=31536000, immutable"
    for icon in page.images:
        assert icon.startswith("/") and not icon.startswith("//"), icon


async def test_a_graphql_query_over_get_is_json_with_the_locked_down_policy(
    server: MailcueServer, http: httpx.AsyncClient
) -> None:
    response = await http.get(
        "/graphql",
        params={"query": "{ health { status } }"},
        headers={"Accept": "application/json"},
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-security-policy"] == LOCKED_DOWN
    assert_common(response)


async def test_the_event_stream_carries_the_headers(
    server: MailcueServer, http: httpx.AsyncClient
) -> None:
    boss = await admin(http)
    async with http.stream("GET", "/api/v1/events/stream", headers=boss.headers) as response:
        assert response.status_code == 200
        assert_common(response)
        assert "no-store" in response.headers["cache-control"] or (
            "no-cache" in response.headers["cache-control"]
        )


async def test_the_listeners_own_refusals_carry_the_headers(
    server: MailcueServer, http: httpx.AsyncClient
) -> None:
    """414 and 431 are answered before the app sees the request; same headers."""
    too_long = await http.get("/api/v1/health", params={"q": "e" * 9_000})
    too_large = await http.get("/api/v1/health", headers={"X-Big": "a" * 70_000})

    for response, status in ((too_long, 414), (too_large, 431)):
        assert response.status_code == status
        assert_common(response)
        assert response.headers["content-security-policy"] == LOCKED_DOWN
        assert response.headers["cache-control"] == "no-store"


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"GARBAGE\r\n\r\n",
        b"GET /api/v1/health HTTP/1.1\r\nHost: x\r\nContent-Length: nope\r\n\r\n",
        b"GET /graphql HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
    ],
    ids=["malformed", "bad-length", "websocket-without-key"],
)
async def test_a_request_the_listener_cannot_parse_is_400_with_the_headers(
    server: MailcueServer, request_bytes: bytes
) -> None:
    """uvicorn's and the WebSocket library's own 400s, before any app code runs."""
    port = int(server.http_url.rsplit(":", 1)[1])
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(request_bytes)
    async with asyncio.timeout(10):
        answer = await reader.read()  # the listener closes after its answer
    writer.close()

    head = answer.split(b"\r\n\r\n", 1)[0].decode().split("\r\n")
    pairs = (line.partition(": ") for line in head[1:])
    fields = {name.lower(): value for name, _, value in pairs}
    assert head[0] == "HTTP/1.1 400 Bad Request"
    for name, value in COMMON.items():
        assert fields.get(name) == value, (name, fields)
    assert fields["content-security-policy"] == LOCKED_DOWN
    assert fields["cache-control"] == "no-store"
