"""Helpers for tests that need users, tokens and API keys on a running server."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

import httpx

from conftest import ADMIN_PASSWORD, ADMIN_USER

PASSWORD = "correct-horse-battery"


@dataclass
class Account:
    username: str
    password: str
    access_token: str
    refresh_token: str
    user: dict[str, Any]

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access_token}"}


async def login(http: httpx.AsyncClient, username: str, password: str) -> Account:
    response = await http.post(
        "/api/v1/auth/login", json={"username": username, "password": password}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    return Account(username, password, body["access_token"], body["refresh_token"], body["user"])


async def admin(http: httpx.AsyncClient) -> Account:
    return await login(http, ADMIN_USER, ADMIN_PASSWORD)


async def new_user(http: httpx.AsyncClient, *, is_admin: bool = False) -> Account:
    """Register a fresh user through the admin and log in as them."""
    boss = await admin(http)
    username = f"user-{secrets.token_hex(4)}"
    response = await http.post(
        "/api/v1/auth/register",
        headers=boss.headers,
        json={
            "username": username,
            "email": f"{username}@example.test",
            "password": PASSWORD,
            "is_admin": is_admin,
        },
    )
    assert response.status_code == 201, response.text
    return await login(http, username, PASSWORD)


async def new_api_key(http: httpx.AsyncClient, owner: Account, **body: Any) -> dict[str, Any]:
    response = await http.post(
        "/api/v1/auth/api-keys", headers=owner.headers, json={"name": "test key", **body}
    )
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def new_mailbox(
    http: httpx.AsyncClient,
    owner: Account,
    *,
    password: str = PASSWORD,
    domain: str = "example.test",
) -> str:
    """Create a mailbox through the API as ``owner``; returns its address."""
    response = await http.post(
        "/api/v1/mailboxes",
        headers=owner.headers,
        json={"username": f"m{secrets.token_hex(4)}", "password": password, "domain": domain},
    )
    assert response.status_code == 201, response.text
    return str(response.json()["address"])


async def set_retention(
    http: httpx.AsyncClient, boss: Account, *, messages: int, days: int
) -> None:
    """Set the server-wide retention limits (0 is no limit)."""
    response = await http.put(
        "/api/v1/system/settings",
        headers=boss.headers,
        json={"retention_max_messages": messages, "retention_max_age_days": days},
    )
    assert response.status_code == 200, response.text


async def graphql(
    http: httpx.AsyncClient, account: Account | None, document: str, **variables: Any
) -> dict[str, Any]:
    """POST a GraphQL document as ``account`` (None: anonymous); returns the whole answer."""
    headers = account.headers if account is not None else {}
    response = await http.post(
        "/graphql", headers=headers, json={"query": document, "variables": variables}
    )
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result
