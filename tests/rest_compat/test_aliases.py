"""Aliases over REST, GraphQL and the official SDK: admin only, catch-alls, loops refused."""

from __future__ import annotations

import secrets
from typing import Any

import httpx
import pytest
from mailcue import AsyncMailcue

from accounts import Account, admin, graphql, new_api_key, new_user

ALIASES = "/api/v1/aliases"


def domain() -> str:
    """A fresh domain per test, so tests sharing the module server never collide."""
    return f"d{secrets.token_hex(4)}.test"


async def create(http: httpx.AsyncClient, boss: Account, source: str, dest: str) -> httpx.Response:
    return await http.post(
        ALIASES,
        headers=boss.headers,
        json={"source_address": source, "destination_address": dest},
    )


async def test_create_read_update_delete(http: httpx.AsyncClient) -> None:
    boss, d = await admin(http), domain()
    created = await create(http, boss, f"Sales@{d.upper()}", f"alice@{d}, Bob@{d}")
    assert created.status_code == 201, created.text
    alias = created.json()
    assert alias["source_address"] == f"sales@{d}"
    assert alias["destination_address"] == f"alice@{d}, bob@{d}"
    assert alias["destinations"] == [f"alice@{d}", f"bob@{d}"]
    assert alias["domain"] == d and alias["is_catchall"] is False and alias["enabled"] is True
    assert isinstance(alias["id"], int)

    got = await http.get(f"{ALIASES}/{alias['id']}", headers=boss.headers)
    assert got.status_code == 200 and got.json() == alias
    listed = (await http.get(ALIASES, headers=boss.headers)).json()
    assert alias in listed["aliases"] and listed["total"] == len(listed["aliases"])

    changed = await http.put(
        f"{ALIASES}/{alias['id']}",
        headers=boss.headers,
        json={"destination_address": f"carol@{d}", "enabled": False},
    )
    assert changed.status_code == 200
    assert changed.json()["destinations"] == [f"carol@{d}"]
    assert changed.json()["enabled"] is False

    only_flag = await http.put(
        f"{ALIASES}/{alias['id']}", headers=boss.headers, json={"enabled": True}
    )
    assert only_flag.json()["destinations"] == [f"carol@{d}"] and only_flag.json()["enabled"]

    deleted = await http.delete(f"{ALIASES}/{alias['id']}", headers=boss.headers)
    assert deleted.status_code == 204
    gone = await http.get(f"{ALIASES}/{alias['id']}", headers=boss.headers)
    assert gone.status_code == 404
    again = await http.delete(f"{ALIASES}/{alias['id']}", headers=boss.headers)
    assert again.status_code == 404


async def test_catch_all_sources(http: httpx.AsyncClient) -> None:
    boss, d = await admin(http), domain()
    for spelling in (f"@{d}", f"*@{d.upper()}"):
        response = await create(http, boss, spelling, f"postmaster@{d}")
        if spelling.startswith("@"):
            assert response.status_code == 201, response.text
            body = response.json()
            assert body["source_address"] == f"@{d}" and body["is_catchall"] is True
        else:  # the same catch-all spelled differently
            assert response.status_code == 409


async def test_duplicate_source_is_409(http: httpx.AsyncClient) -> None:
    boss, d = await admin(http), domain()
    assert (await create(http, boss, f"info@{d}", f"a@{d}")).status_code == 201
    duplicate = await create(http, boss, f"INFO@{d}", f"b@{d}")
    assert duplicate.status_code == 409
    assert "already exists" in duplicate.json()["detail"]


async def test_loops_are_refused_with_409_naming_the_chain(http: httpx.AsyncClient) -> None:
    boss, d = await admin(http), domain()
    assert (await create(http, boss, f"a@{d}", f"b@{d}")).status_code == 201
    assert (await create(http, boss, f"b@{d}", f"c@{d}")).status_code == 201
    loop = await create(http, boss, f"c@{d}", f"x@{d}, a@{d}")
    assert loop.status_code == 409
    assert loop.json()["detail"] == (
        f"This alias would create a loop: c@{d} -> a@{d} -> b@{d} -> c@{d}"
    )
    # Only itself: pointless, so a 400; itself among others is "keep a copy here".
    only_self = await create(http, boss, f"me@{d}", f"me@{d}")
    assert only_self.status_code == 400
    keep_copy = await create(http, boss, f"me@{d}", f"me@{d}, backup@{d}")
    assert keep_copy.status_code == 201


async def test_a_loop_through_catch_alls_is_refused(http: httpx.AsyncClient) -> None:
    boss, one, two = await admin(http), domain(), domain()
    assert (await create(http, boss, f"@{one}", f"x@{two}")).status_code == 201
    loop = await create(http, boss, f"@{two}", f"y@{one}")
    assert loop.status_code == 409
    assert loop.json()["detail"].endswith(f"y@{one} -> x@{two} -> y@{one}")
    # A catch-all to an address of its own domain is no loop: that address is final.
    own = await create(http, boss, f"@{two}", f"boss@{two}")
    assert own.status_code == 201, own.text


async def test_enabling_or_changing_into_a_loop_is_refused(http: httpx.AsyncClient) -> None:
    boss, d = await admin(http), domain()
    first = (await create(http, boss, f"p@{d}", f"q@{d}")).json()
    second = (await create(http, boss, f"q@{d}", f"r@{d}")).json()
    into_loop = await http.put(
        f"{ALIASES}/{second['id']}", headers=boss.headers, json={"destination_address": f"p@{d}"}
    )
    assert into_loop.status_code == 409
    # Disabled, the loop cannot happen; enabling it again is refused.
    off = await http.put(f"{ALIASES}/{first['id']}", headers=boss.headers, json={"enabled": False})
    assert off.status_code == 200
    looped = await http.put(
        f"{ALIASES}/{second['id']}", headers=boss.headers, json={"destination_address": f"p@{d}"}
    )
    assert looped.status_code == 200
    on = await http.put(f"{ALIASES}/{first['id']}", headers=boss.headers, json={"enabled": True})
    assert on.status_code == 409 and "loop" in on.json()["detail"]


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"source_address": "not an address", "destination_address": "a@b.test"}, 400),
        ({"source_address": "@-bad-.test", "destination_address": "a@b.test"}, 400),
        ({"source_address": "@nodot", "destination_address": "a@b.test"}, 400),
        ({"source_address": "x@y.test", "destination_address": ""}, 400),
        ({"source_address": "x@y.test", "destination_address": "a@b.test, @b.test"}, 400),
        ({"source_address": "x@y.test", "destination_address": "<script>@b"}, 400),
        ({"source_address": 5, "destination_address": "a@b.test"}, 422),
        ({"source_address": "x@y.test", "destination_address": ["a@b.test"]}, 422),
        ({"source_address": "x@y.test", "destination_address": "a@b.test", "enabled": "no?"}, 422),
        ({"source_address": "x@y.test"}, 422),
    ],
)
async def test_bad_input_is_4xx(
    http: httpx.AsyncClient, body: dict[str, Any], status: int
) -> None:
    boss = await admin(http)
    response = await http.post(ALIASES, headers=boss.headers, json=body)
    assert response.status_code == status, response.text
    assert response.json()["detail"]


async def test_bad_ids_are_4xx(http: httpx.AsyncClient) -> None:
    boss = await admin(http)
    for path, status in (
        ("abc", 422),
        ("0", 422),
        ("-1", 422),
        (str(2**40), 422),
        ("1.5", 422),
        ("..%2F..%2Fetc", 404),  # an encoded slash matches no route
        ("2147483647", 404),
    ):
        response = await http.get(f"{ALIASES}/{path}", headers=boss.headers)
        assert response.status_code == status, (path, response.text)


async def test_only_admins_with_the_scope(http: httpx.AsyncClient) -> None:
    boss, d = await admin(http), domain()
    alias = (await create(http, boss, f"s@{d}", f"t@{d}")).json()
    user = await new_user(http)
    key_reader = (await new_api_key(http, boss, scopes=["alias:read"]))["key"]
    key_other = (await new_api_key(http, boss, scopes=["domain:read"]))["key"]
    user_key = (await new_api_key(http, user))["key"]
    calls = [
        ("GET", ALIASES, None),
        ("POST", ALIASES, {"source_address": f"u@{d}", "destination_address": f"v@{d}"}),
        ("GET", f"{ALIASES}/{alias['id']}", None),
        ("PUT", f"{ALIASES}/{alias['id']}", {"enabled": False}),
        ("DELETE", f"{ALIASES}/{alias['id']}", None),
    ]
    for method, url, body in calls:
        anonymous = await http.request(method, url, json=body)
        assert anonymous.status_code == 401, (method, url)
        regular = await http.request(method, url, json=body, headers=user.headers)
        assert regular.status_code == 403, (method, url)
        regular_key = await http.request(method, url, json=body, headers={"X-API-Key": user_key})
        assert regular_key.status_code == 403, (method, url)
        wrong_scope = await http.request(method, url, json=body, headers={"X-API-Key": key_other})
        assert wrong_scope.status_code == 403, (method, url)
        assert "alias:" in wrong_scope.json()["detail"]
        reader = await http.request(method, url, json=body, headers={"X-API-Key": key_reader})
        assert reader.status_code == (200 if method == "GET" else 403), (method, url)


GQL_CREATE = """
mutation ($source: String!, $dest: String!) {
  createAlias(input: {sourceAddress: $source, destinationAddress: $dest}) {
    __typename
    ... on Alias { id sourceAddress destinations isCatchall enabled }
    ... on OperationError { code message }
  }
}"""
GQL_UPDATE = """
mutation ($id: Int!) {
  updateAlias(id: $id, input: {enabled: false}) {
    __typename ... on Alias { enabled } ... on OperationError { code message }
  }
}"""
GQL_DELETE = """
mutation ($id: Int!) {
  deleteAlias(id: $id) { __typename ... on Done { message } ... on OperationError { code } }
}"""


async def test_graphql_twin(http: httpx.AsyncClient) -> None:
    boss, d = await admin(http), domain()
    made = (await graphql(http, boss, GQL_CREATE, source=f"@{d}", dest=f"hub@{d}"))["data"]
    alias = made["createAlias"]
    assert alias["__typename"] == "Alias" and alias["isCatchall"] is True
    assert alias["destinations"] == [f"hub@{d}"]
    twice = (await graphql(http, boss, GQL_CREATE, source=f"@{d}", dest=f"x@{d}"))["data"]
    assert twice["createAlias"]["__typename"] == "OperationError"
    assert twice["createAlias"]["code"] == "CONFLICT"

    one_query = "query ($id: Int!) { alias(id: $id) { sourceAddress } }"
    one = await graphql(http, boss, one_query, id=alias["id"])
    assert one["data"]["alias"]["sourceAddress"] == f"@{d}"
    listed = await graphql(http, boss, "{ aliases { total aliases { id } } }")
    assert {"id": alias["id"]} in listed["data"]["aliases"]["aliases"]
    updated = await graphql(http, boss, GQL_UPDATE, id=alias["id"])
    assert updated["data"]["updateAlias"] == {"__typename": "Alias", "enabled": False}
    deleted = await graphql(http, boss, GQL_DELETE, id=alias["id"])
    assert deleted["data"]["deleteAlias"] == {"__typename": "Done", "message": "Alias deleted"}

    user = await new_user(http)
    denied = await graphql(http, user, GQL_CREATE, source=f"z@{d}", dest=f"y@{d}")
    assert denied["data"]["createAlias"]["code"] == "FORBIDDEN"
    hidden = await graphql(http, user, "{ aliases { total } }")
    assert hidden["errors"][0]["extensions"]["code"] == "FORBIDDEN"


async def test_official_sdk(http: httpx.AsyncClient) -> None:
    boss, d = await admin(http), domain()
    key = (await new_api_key(http, boss, scopes=["alias:read", "alias:write"]))["key"]
    base_url = str(http.base_url).rstrip("/")
    async with AsyncMailcue(api_key=key, base_url=base_url, max_retries=0) as client:
        alias = await client.aliases.create(f"team@{d}", f"ann@{d}")
        assert alias.source_address == f"team@{d}" and alias.destination_address == f"ann@{d}"
        assert (await client.aliases.get(alias.id)).id == alias.id
        assert alias.id in [a.id for a in (await client.aliases.list()).aliases]
        updated = await client.aliases.update(alias.id, destination_address=f"ben@{d}")
        assert updated.destination_address == f"ben@{d}"
        await client.aliases.delete(alias.id)
