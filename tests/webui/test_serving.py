"""How the web UI's build is served: cache headers, client routes, and what it never answers."""

from __future__ import annotations

import re

import httpx
import pytest

from mailcue_server.api.static_ui import BUILD_DIR


def first_page_assets() -> list[str]:
    html = (BUILD_DIR / "index.html").read_text()
    return re.findall(r'(?:src|href)="(/assets/[^"]+)"', html)


async def test_client_routes_answer_the_app_page_which_is_never_cached_stale(
    http: httpx.AsyncClient,
) -> None:
    index = (BUILD_DIR / "index.html").read_bytes()
    for path in ("/", "/signin", "/mail/alice%40example.com/INBOX", "/mail/a/INBOX/12"):
        response = await http.get(path)
        assert response.status_code == 200, path
        assert response.content == index
        assert response.headers["cache-control"] == "no-cache"


async def test_hashed_assets_are_immutable_and_typed(http: httpx.AsyncClient) -> None:
    assets = first_page_assets()
    assert any(name.endswith(".js") for name in assets)
    assert any(name.endswith(".css") for name in assets)
    for name in assets:
        response = await http.get(name)
        assert response.status_code == 200
        assert response.headers["cache-control"] == "public, max-age=31536000, immutable"
        expected = "text/javascript" if name.endswith(".js") else "text/css"
        assert response.headers["content-type"].startswith(expected)


@pytest.mark.parametrize(
    "path",
    [
        "/api",
        "/api/v1/no-such-route",
        "/graphql/no-such-thing",
        "/.well-known/no-such-file",
        "/assets/no-such-file.js",
        "/assets/%2e%2e/index.html",
    ],
)
async def test_api_paths_and_missing_assets_keep_their_json_404(
    http: httpx.AsyncClient, path: str
) -> None:
    response = await http.get(path, headers={"Accept": "text/html"})
    assert response.status_code == 404
    assert response.json() == {"detail": "Not Found"}


async def test_a_wrong_method_on_an_api_route_is_still_405(http: httpx.AsyncClient) -> None:
    response = await http.get("/api/v1/auth/login")
    assert response.status_code == 405


async def test_other_methods_never_get_the_app_page(http: httpx.AsyncClient) -> None:
    response = await http.post("/mail/a/INBOX", json={})
    assert response.status_code in (404, 405)
    assert response.headers["content-type"].startswith("application/json")
