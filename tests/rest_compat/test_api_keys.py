"""API keys over REST: shown once, stored hashed, scoped, revocable, no escalation."""

from __future__ import annotations

import httpx

from accounts import admin, new_api_key, new_user

KEYS = "/api/v1/auth/api-keys"
ME = "/api/v1/auth/me"


async def test_create_list_patch_revoke(http: httpx.AsyncClient) -> None:
    owner = await new_user(http)
    created = await new_api_key(http, owner, name="ci bot")
    key = created["key"]
    assert key.startswith("mc_") and len(key) > 40
    assert created["prefix"] == key[: len(created["prefix"])]
    assert created["scopes"] == ["*"] and created["allowed_mailboxes"] is None
    assert created["is_active"] is True

    listed = (await http.get(KEYS, headers=owner.headers)).json()
    assert [k["id"] for k in listed] == [created["id"]]
    assert "key" not in listed[0] and key not in str(listed)

    # The key authenticates as its owner, by header and as a bearer token.
    me = await http.get(ME, headers={"X-API-Key": key})
    assert me.status_code == 200 and me.json()["username"] == owner.username
    assert (await http.get(ME, headers={"Authorization": f"Bearer {key}"})).status_code == 200

    patched = await http.patch(
        f"{KEYS}/{created['id']}",
        headers=owner.headers,
        json={"name": "renamed", "scopes": ["email:read"]},
    )
    assert patched.status_code == 200
    assert patched.json()["name"] == "renamed" and patched.json()["scopes"] == ["email:read"]
    # Same secret, new permissions: managing keys is no longer allowed with it.
    denied = await http.get(KEYS, headers={"X-API-Key": key})
    assert denied.status_code == 403

    revoked = await http.delete(f"{KEYS}/{created['id']}", headers=owner.headers)
    assert revoked.status_code == 204
    assert (await http.get(ME, headers={"X-API-Key": key})).status_code == 401
    assert (await http.get(KEYS, headers=owner.headers)).json() == []


async def test_missing_scope_is_403_with_the_scope_named(http: httpx.AsyncClient) -> None:
    owner = await new_user(http)
    key = (await new_api_key(http, owner, scopes=["email:read"]))["key"]
    response = await http.post(KEYS, headers={"X-API-Key": key}, json={"name": "child"})
    assert response.status_code == 403
    # The official SDK extracts the scope from this wording.
    assert "required 'apikey:manage' permission" in response.json()["detail"]


async def test_deactivated_key_is_401(http: httpx.AsyncClient) -> None:
    owner = await new_user(http)
    created = await new_api_key(http, owner)
    off = await http.patch(
        f"{KEYS}/{created['id']}", headers=owner.headers, json={"is_active": False}
    )
    assert off.status_code == 200 and off.json()["is_active"] is False
    assert (await http.get(ME, headers={"X-API-Key": created["key"]})).status_code == 401


async def test_made_up_and_malformed_keys_are_401(http: httpx.AsyncClient) -> None:
    for value in ("mc_made_up", "", "x" * 5000, "mc_' OR 1=1 --"):
        response = await http.get(ME, headers={"X-API-Key": value})
        assert response.status_code == 401, value


async def test_a_key_cannot_grant_more_than_it_holds(http: httpx.AsyncClient) -> None:
    owner = await new_user(http)
    limited = await new_api_key(
        http, owner, scopes=["apikey:manage", "email:read"], allowed_mailboxes=["a@mailcue.local"]
    )
    as_key = {"X-API-Key": limited["key"]}
    broader = await http.post(KEYS, headers=as_key, json={"name": "x", "scopes": ["email:send"]})
    assert broader.status_code == 403
    other_box = await http.post(
        KEYS, headers=as_key, json={"name": "x", "allowed_mailboxes": ["b@mailcue.local"]}
    )
    assert other_box.status_code == 403
    # Asking for "everything" yields only what the parent holds.
    child = await http.post(KEYS, headers=as_key, json={"name": "child"})
    assert child.status_code == 201
    assert child.json()["scopes"] == ["apikey:manage", "email:read"]
    assert child.json()["allowed_mailboxes"] == ["a@mailcue.local"]


async def test_admin_only_scopes_need_an_admin(http: httpx.AsyncClient) -> None:
    user = await new_user(http)
    response = await http.post(
        KEYS, headers=user.headers, json={"name": "x", "scopes": ["domain:write"]}
    )
    assert response.status_code == 403
    boss = await admin(http)
    ok = await http.post(
        KEYS, headers=boss.headers, json={"name": "x", "scopes": ["domain:write"]}
    )
    assert ok.status_code == 201
    await http.delete(f"{KEYS}/{ok.json()['id']}", headers=boss.headers)


async def test_unknown_scope_and_bad_values_are_rejected(http: httpx.AsyncClient) -> None:
    owner = await new_user(http)
    unknown = await http.post(
        KEYS, headers=owner.headers, json={"name": "x", "scopes": ["email:everything"]}
    )
    assert unknown.status_code == 400 and "email:everything" in unknown.json()["detail"]
    empty_name = await http.post(KEYS, headers=owner.headers, json={"name": "  "})
    assert empty_name.status_code == 400
    wrong_type = await http.post(KEYS, headers=owner.headers, json={"name": "x", "scopes": "*"})
    assert wrong_type.status_code == 422
    not_address = await http.post(
        KEYS, headers=owner.headers, json={"name": "x", "allowed_mailboxes": ["../../etc"]}
    )
    assert not_address.status_code == 400


async def test_another_users_key_is_not_found(http: httpx.AsyncClient) -> None:
    alice = await new_user(http)
    mallory = await new_user(http)
    key = await new_api_key(http, alice)
    path = f"{KEYS}/{key['id']}"
    assert (
        await http.patch(path, headers=mallory.headers, json={"name": "mine"})
    ).status_code == 404
    assert (await http.delete(path, headers=mallory.headers)).status_code == 404
    assert (await http.delete(f"{KEYS}/not-a-uuid", headers=mallory.headers)).status_code == 404
    # Still Alice's and still working.
    assert (await http.get(ME, headers={"X-API-Key": key["key"]})).json()[
        "username"
    ] == alice.username


async def test_scope_catalog(http: httpx.AsyncClient) -> None:
    owner = await new_user(http)
    response = await http.get(f"{KEYS}/scopes", headers=owner.headers)
    assert response.status_code == 200
    scopes = {s["value"]: s for s in response.json()["scopes"]}
    assert {"email:read", "email:send", "email:delete", "mailbox:read", "mailbox:write"} <= set(
        scopes
    )
    assert scopes["domain:write"]["admin_only"] is True
    assert all(s["description"] and s["group"] and s["label"] for s in scopes.values())
    assert (await http.get(f"{KEYS}/scopes")).status_code == 401


async def test_keys_die_with_their_deactivated_owner(http: httpx.AsyncClient) -> None:
    owner = await new_user(http)
    key = await new_api_key(http, owner)
    boss = await admin(http)
    assert (
        await http.delete(f"/api/v1/auth/users/{owner.user['id']}", headers=boss.headers)
    ).status_code == 204
    assert (await http.get(ME, headers={"X-API-Key": key["key"]})).status_code == 401
