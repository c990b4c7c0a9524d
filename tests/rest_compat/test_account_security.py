"""Account security from the attacker's side: a leaked API key must not take the account over.

A key with a data scope (``email:read``), or even full access (``*``), may not
turn TOTP on, change the password, end sessions or mint a key that can; only a
session token (a password login) or a key granted ``account:security`` by name may.
"""

from __future__ import annotations

import secrets
from typing import Any

import httpx
import pyotp

from accounts import PASSWORD, Account, graphql, login, new_api_key, new_user

LOGIN = "/api/v1/auth/login"
ME = "/api/v1/auth/me"
SCOPE = "account:security"


def as_key(created: dict[str, Any]) -> dict[str, str]:
    return {"X-API-Key": created["key"]}


async def attack_with(http: httpx.AsyncClient, headers: dict[str, str]) -> list[int]:
    """Every account-security call an attacker holding ``headers`` would try, by status."""
    setup = await http.post("/api/v1/auth/totp/setup", headers=headers)
    secret = setup.json().get("secret") if setup.status_code == 200 else pyotp.random_base32()
    confirm = await http.post(
        "/api/v1/auth/totp/confirm", headers=headers, json={"code": pyotp.TOTP(secret).now()}
    )
    disable = await http.post(
        "/api/v1/auth/totp/disable", headers=headers, json={"password": PASSWORD, "code": ""}
    )
    password = await http.put(
        "/api/v1/auth/password",
        headers=headers,
        json={"current_password": PASSWORD, "new_password": "attacker-chose-this-1"},
    )
    return [r.status_code for r in (setup, confirm, disable, password)]


async def test_a_data_key_cannot_lock_its_owner_out(http: httpx.AsyncClient) -> None:
    owner = await new_user(http)
    laptop = await login(http, owner.username, PASSWORD)
    key = await new_api_key(http, owner, scopes=["email:read"])

    statuses = await attack_with(http, as_key(key))

    assert statuses == [403, 403, 403, 403]
    # Nothing changed: the password logs in without a second factor, sessions live on.
    again = await http.post(LOGIN, json={"username": owner.username, "password": PASSWORD})
    assert again.status_code == 200, again.text
    assert "access_token" in again.json()
    assert (await http.get(ME, headers=laptop.headers)).json()["totp_enabled"] is False


async def test_a_full_access_key_does_not_imply_account_security(
    http: httpx.AsyncClient,
) -> None:
    owner = await new_user(http)
    full = await new_api_key(http, owner)
    assert full["scopes"] == ["*"]

    assert await attack_with(http, as_key(full)) == [403, 403, 403, 403]
    refused = await http.post(
        "/api/v1/auth/totp/setup", headers=as_key(full)
    )  # the message names the scope that is missing
    assert SCOPE in refused.json()["detail"]
    # Nor can it mint a key that holds the scope.
    minted = await http.post(
        "/api/v1/auth/api-keys", headers=as_key(full), json={"name": "up", "scopes": [SCOPE]}
    )
    assert minted.status_code == 403, minted.text
    assert (await login(http, owner.username, PASSWORD)).access_token


async def test_a_data_key_cannot_manage_keys(http: httpx.AsyncClient) -> None:
    owner = await new_user(http)
    reader = await new_api_key(http, owner, scopes=["email:read"])
    other = await new_api_key(http, owner, scopes=["email:read"])
    headers = as_key(reader)
    made = await http.post("/api/v1/auth/api-keys", headers=headers, json={"name": "x"})
    changed = await http.patch(
        f"/api/v1/auth/api-keys/{other['id']}", headers=headers, json={"is_active": False}
    )
    gone = await http.delete(f"/api/v1/auth/api-keys/{other['id']}", headers=headers)
    assert [made.status_code, changed.status_code, gone.status_code] == [403, 403, 403]


async def test_a_key_granted_account_security_by_a_session_may_use_it(
    http: httpx.AsyncClient,
) -> None:
    owner = await new_user(http)
    key = await new_api_key(http, owner, scopes=[SCOPE])
    assert key["scopes"] == [SCOPE]
    headers = as_key(key)
    setup = await http.post("/api/v1/auth/totp/setup", headers=headers)
    assert setup.status_code == 200, setup.text
    code = pyotp.TOTP(setup.json()["secret"]).now()
    confirmed = await http.post("/api/v1/auth/totp/confirm", headers=headers, json={"code": code})
    assert confirmed.status_code == 200, confirmed.text
    # The scope is about the account only: no mail.
    listing = await http.get("/api/v1/mailboxes", headers=headers)
    assert listing.status_code == 403
    # A key holding it may pass it on (never more than it holds: not apikey:manage here).
    child = await http.post(
        "/api/v1/auth/api-keys", headers=headers, json={"name": "c", "scopes": [SCOPE]}
    )
    assert child.status_code == 403
    off = await http.post(
        "/api/v1/auth/totp/disable", headers=headers, json={"password": PASSWORD, "code": ""}
    )
    assert off.status_code == 200, off.text


async def test_the_catalog_names_the_scope(http: httpx.AsyncClient) -> None:
    owner = await new_user(http)
    catalog = await http.get("/api/v1/auth/api-keys/scopes", headers=owner.headers)
    by_value = {s["value"]: s for s in catalog.json()["scopes"]}
    assert SCOPE in by_value
    assert "*" in by_value[SCOPE]["description"]  # says that full access does not include it
    assert by_value[SCOPE]["admin_only"] is False


SETUP = "mutation { setupTotp { __typename ... on OperationError { code message } } }"
CHANGE = """
mutation ($current: String!, $new: String!) {
  changePassword(input: {currentPassword: $current, newPassword: $new}) {
    __typename ... on OperationError { code message }
  }
}"""


async def test_graphql_refuses_the_same_calls_to_a_data_key(http: httpx.AsyncClient) -> None:
    owner = await new_user(http)
    key = await new_api_key(http, owner, scopes=["email:read", "mailbox:read"])
    attacker = Account("key", "", "", "", {})
    attacker.access_token = key["key"]  # keys work as bearer tokens too
    setup = (await graphql(http, attacker, SETUP))["data"]["setupTotp"]
    change = (
        await graphql(
            http, attacker, CHANGE, current=PASSWORD, new=f"attacker-{secrets.token_hex(4)}"
        )
    )["data"]["changePassword"]
    assert (setup["code"], change["code"]) == ("FORBIDDEN", "FORBIDDEN")
    assert SCOPE in setup["message"]
    mine = (await graphql(http, owner, SETUP))["data"]["setupTotp"]
    assert mine["__typename"] == "TotpSetup"
