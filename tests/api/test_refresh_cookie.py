"""A browser's sign-in: the refresh token in an HttpOnly cookie, from the user's and the
attacker's side, over REST and GraphQL.

The "browser" is an httpx client with a cookie jar, which honours the
cookie's Path as a browser does. This module's node trusts 127.0.0.1 as a
proxy (so ``X-Forwarded-Proto: https`` stands for a TLS front end) and has a
short reuse grace, so a reused token is tested with real time passing.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from http.cookies import SimpleCookie
from typing import Any

import httpx
import pytest
import pytest_asyncio

from accounts import PASSWORD, new_user
from conftest import node_settings
from mailcue_server.app import MailcueServer

GRACE = 0.5
LOGIN = "/api/v1/auth/login"
REFRESH = "/api/v1/auth/refresh"
LOGOUT = "/api/v1/auth/logout"
ME = "/api/v1/auth/me"
HEADER = {"X-MailCue-Refresh": "1"}
GQL_LOGIN = """
mutation ($u: String!, $p: String!) {
  login(input: {username: $u, password: $p}) {
    __typename ... on AuthTokens { accessToken refreshToken }
  }
}"""
GQL_LOGOUT = "mutation { logout { __typename } }"


@pytest_asyncio.fixture(scope="module")
async def server(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[MailcueServer]:
    node = MailcueServer(
        node_settings(
            tmp_path_factory.mktemp("cookie"),
            refresh_reuse_grace_seconds=GRACE,
            trusted_proxies="127.0.0.1",
        )
    )
    await node.start()
    yield node
    await node.stop()


@pytest_asyncio.fixture
async def browser(server: MailcueServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server.http_url, timeout=10) as client:
        yield client


def refresh_cookie(response: httpx.Response) -> Any:
    """The ``refresh_token`` morsel of a response's Set-Cookie headers."""
    jar: SimpleCookie = SimpleCookie()
    for header in response.headers.get_list("set-cookie"):
        jar.load(header)
    return jar["refresh_token"]


async def sign_in(browser: httpx.AsyncClient, username: str) -> httpx.Response:
    response = await browser.post(LOGIN, json={"username": username, "password": PASSWORD})
    assert response.status_code == 200, response.text
    return response


def bearer(body: dict[str, Any]) -> dict[str, str]:
    return {"Authorization": f"Bearer {body['access_token']}"}


async def test_login_sets_a_strict_httponly_cookie_for_the_refresh_route_only(
    browser: httpx.AsyncClient, http: httpx.AsyncClient
) -> None:
    account = await new_user(http)
    response = await sign_in(browser, account.username)
    cookie = refresh_cookie(response)
    assert cookie.value == response.json()["refresh_token"]
    assert cookie["httponly"] is True and cookie["samesite"].lower() == "strict"
    assert cookie["path"] == REFRESH and not cookie["secure"]
    assert int(cookie["max-age"]) > 0
    # The jar sends it to the refresh route and nowhere else.
    sent = [c for c in browser.cookies.jar if c.name == "refresh_token"]
    assert [c.path for c in sent] == [REFRESH]


async def test_the_cookie_is_secure_when_served_over_https(
    browser: httpx.AsyncClient, http: httpx.AsyncClient
) -> None:
    account = await new_user(http)
    response = await browser.post(
        LOGIN,
        json={"username": account.username, "password": PASSWORD},
        headers={"X-Forwarded-Proto": "https"},
    )
    assert response.status_code == 200
    assert refresh_cookie(response)["secure"] is True


async def test_browser_refresh_with_the_cookie_and_header_rotates_it(
    browser: httpx.AsyncClient, http: httpx.AsyncClient
) -> None:
    account = await new_user(http)
    first = refresh_cookie(await sign_in(browser, account.username)).value
    refreshed = await browser.post(REFRESH, headers=HEADER)
    assert refreshed.status_code == 200, refreshed.text
    body = refreshed.json()
    assert body["user"]["username"] == account.username
    rotated = refresh_cookie(refreshed)
    assert rotated.value == body["refresh_token"] != first
    assert rotated["path"] == REFRESH and rotated["httponly"] is True
    assert (await http.get(ME, headers=bearer(body))).status_code == 200
    # The jar now holds the new token: a second refresh spends that one.
    again = await browser.post(REFRESH, headers=HEADER)
    assert again.status_code == 200 and again.json()["refresh_token"] != body["refresh_token"]


async def test_the_cookie_without_the_header_is_refused_and_not_spent(
    browser: httpx.AsyncClient, http: httpx.AsyncClient
) -> None:
    account = await new_user(http)
    token = refresh_cookie(await sign_in(browser, account.username)).value
    # What a cross-site form can send: the cookie (if the browser sent it), a form body,
    # no custom header. And a header with another value.
    form = await browser.post(REFRESH, data={"refresh_token": ""})
    bare = await browser.post(REFRESH)
    wrong = await browser.post(REFRESH, headers={"X-MailCue-Refresh": "0"})
    assert form.status_code == 422 and "set-cookie" not in form.headers  # not JSON
    for refused in (bare, wrong):
        assert refused.status_code == 401, refused.text
        assert "X-MailCue-Refresh" in refused.json()["detail"]
        assert "set-cookie" not in refused.headers
    # Nothing was spent: the user's own refresh still works, with that same token.
    assert [c.value for c in browser.cookies.jar if c.name == "refresh_token"] == [token]
    ok = await browser.post(REFRESH, headers=HEADER)
    assert ok.status_code == 200 and refresh_cookie(ok).value != token


async def test_a_token_in_the_body_needs_no_header(http: httpx.AsyncClient) -> None:
    account = await new_user(http)
    async with httpx.AsyncClient(base_url=str(http.base_url)) as api_client:
        response = await api_client.post(REFRESH, json={"refresh_token": account.refresh_token})
    assert response.status_code == 200
    assert response.json()["refresh_token"] != account.refresh_token


async def test_a_reused_cookie_token_revokes_the_whole_session(
    browser: httpx.AsyncClient, http: httpx.AsyncClient
) -> None:
    account = await new_user(http)
    stolen = refresh_cookie(await sign_in(browser, account.username)).value
    rotated = await browser.post(REFRESH, headers=HEADER)
    assert rotated.status_code == 200
    await asyncio.sleep(GRACE * 2)
    async with httpx.AsyncClient(base_url=str(http.base_url)) as thief:
        thief.cookies.set("refresh_token", stolen)
        reuse = await thief.post(REFRESH, headers=HEADER)
    assert reuse.status_code == 401
    assert (await http.get(ME, headers=bearer(rotated.json()))).status_code == 401
    assert (await browser.post(REFRESH, headers=HEADER)).status_code == 401


async def test_logout_clears_the_cookie_and_the_session(
    browser: httpx.AsyncClient, http: httpx.AsyncClient
) -> None:
    account = await new_user(http)
    body = (await sign_in(browser, account.username)).json()
    out = await browser.post(LOGOUT, headers=bearer(body))
    assert out.status_code == 200
    cleared = refresh_cookie(out)
    assert cleared.value == "" and int(cleared["max-age"]) == 0 and cleared["path"] == REFRESH
    assert not [c for c in browser.cookies.jar if c.name == "refresh_token"]
    assert (
        await http.post(REFRESH, json={"refresh_token": body["refresh_token"]})
    ).status_code == 401


async def test_graphql_login_sets_the_cookie_and_logout_clears_it(
    browser: httpx.AsyncClient, http: httpx.AsyncClient
) -> None:
    account = await new_user(http)
    variables = {"u": account.username, "p": PASSWORD}
    response = await browser.post("/graphql", json={"query": GQL_LOGIN, "variables": variables})
    tokens = response.json()["data"]["login"]
    assert tokens["__typename"] == "AuthTokens"
    cookie = refresh_cookie(response)
    assert cookie.value == tokens["refreshToken"]
    assert cookie["path"] == REFRESH and cookie["httponly"] is True
    assert cookie["samesite"].lower() == "strict"
    # The UI signs in over GraphQL and refreshes at the REST route with its cookie.
    refreshed = await browser.post(REFRESH, headers=HEADER)
    assert refreshed.status_code == 200
    access = {"Authorization": f"Bearer {refreshed.json()['access_token']}"}
    out = await browser.post("/graphql", json={"query": GQL_LOGOUT}, headers=access)
    assert out.json()["data"]["logout"]["__typename"] == "Done"
    assert refresh_cookie(out).value == "" and int(refresh_cookie(out)["max-age"]) == 0
    assert (await browser.post(REFRESH, headers=HEADER)).status_code == 401
