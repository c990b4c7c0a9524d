"""The authentication scenarios through GraphQL: same resolvers, same rules."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pyotp

from accounts import PASSWORD, admin, new_api_key, new_user


async def gql(
    http: httpx.AsyncClient, query: str, headers: dict[str, str] | None = None, **variables: Any
) -> dict[str, Any]:
    response = await http.post(
        "/graphql", json={"query": query, "variables": variables}, headers=headers or {}
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


LOGIN = """
mutation ($u: String!, $p: String!) {
  login(input: {username: $u, password: $p}) {
    __typename
    ... on AuthTokens { accessToken refreshToken tokenType user { username isAdmin totpEnabled } }
    ... on TwoFactorRequired { requires2fa tempToken }
    ... on OperationError { code message retryAfter }
  }
}"""
ME = "{ me { username email isAdmin } }"
REFRESH = """
mutation ($t: String!) {
  refreshToken(refreshToken: $t) {
    __typename
    ... on AuthTokens { accessToken refreshToken }
    ... on OperationError { code message }
  }
}"""


async def test_login_me_and_wrong_password(http: httpx.AsyncClient) -> None:
    user = await new_user(http)
    body = await gql(http, LOGIN, u=user.username, p=PASSWORD)
    tokens = body["data"]["login"]
    assert tokens["__typename"] == "AuthTokens" and tokens["tokenType"] == "bearer"
    me = await gql(http, ME, {"Authorization": f"Bearer {tokens['accessToken']}"})
    assert me["data"]["me"]["username"] == user.username

    wrong = (await gql(http, LOGIN, u=user.username, p="nope-nope"))["data"]["login"]
    assert wrong == {
        "__typename": "OperationError",
        "code": "UNAUTHENTICATED",
        "message": "Incorrect username or password",
        "retryAfter": None,
    }


async def test_protected_query_without_credentials_is_coded_error(http: httpx.AsyncClient) -> None:
    body = await gql(http, ME)
    assert body["data"] is None
    assert body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    public = await gql(http, "{ health { status } }", {"Authorization": "Bearer garbage"})
    assert public["data"]["health"]["status"] == "healthy"


async def test_refresh_reuse_revokes_the_session(http: httpx.AsyncClient) -> None:
    user = await new_user(http)
    first = (await gql(http, REFRESH, t=user.refresh_token))["data"]["refreshToken"]
    assert first["__typename"] == "AuthTokens"
    # Sent again at once (two tabs): refused, and the session lives on (the grace period).
    reused = (await gql(http, REFRESH, t=user.refresh_token))["data"]["refreshToken"]
    assert reused["code"] == "UNAUTHENTICATED"
    second = (await gql(http, REFRESH, t=first["refreshToken"]))["data"]["refreshToken"]
    assert second["__typename"] == "AuthTokens"
    # Now the first token is two rotations old: someone copied it. The session dies.
    older = (await gql(http, REFRESH, t=user.refresh_token))["data"]["refreshToken"]
    assert older["code"] == "UNAUTHENTICATED"
    newest = (await gql(http, REFRESH, t=second["refreshToken"]))["data"]["refreshToken"]
    assert newest["code"] == "UNAUTHENTICATED"
    me = await gql(http, ME, {"Authorization": f"Bearer {second['accessToken']}"})
    assert me["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


async def test_logout_revokes_access_token(http: httpx.AsyncClient) -> None:
    user = await new_user(http)
    done = await gql(
        http, "mutation { logout { __typename ... on Done { message } } }", user.headers
    )
    assert done["data"]["logout"]["__typename"] == "Done"
    assert (await gql(http, ME, user.headers))["errors"][0]["extensions"]["code"] == (
        "UNAUTHENTICATED"
    )


async def test_register_needs_admin(http: httpx.AsyncClient) -> None:
    user = await new_user(http)
    mutation = """
    mutation ($u: String!) {
      registerUser(input: {username: $u, email: "g@example.test", password: "long-enough-1"}) {
        __typename
        ... on User { username }
        ... on OperationError { code message }
      }
    }"""
    denied = (await gql(http, mutation, user.headers, u="gql-user"))["data"]["registerUser"]
    assert denied["code"] == "FORBIDDEN"
    boss = await admin(http)
    made = (await gql(http, mutation, boss.headers, u="gql-user"))["data"]["registerUser"]
    assert made == {"__typename": "User", "username": "gql-user"}


async def test_api_key_lifecycle_and_scope_denial(http: httpx.AsyncClient) -> None:
    user = await new_user(http)
    create = """
    mutation ($scopes: [String!]) {
      createApiKey(input: {name: "gql", scopes: $scopes}) {
        __typename
        ... on CreatedApiKey { id key scopes }
        ... on OperationError { code message }
      }
    }"""
    made = (await gql(http, create, user.headers, scopes=["email:read"]))["data"]["createApiKey"]
    assert made["__typename"] == "CreatedApiKey" and made["key"].startswith("mc_")
    as_key = {"X-API-Key": made["key"]}
    assert (await gql(http, ME, as_key))["data"]["me"]["username"] == user.username
    # The key lacks apikey:manage, so the list query fails with FORBIDDEN...
    listing = await gql(http, "{ apiKeys { id } }", as_key)
    assert listing["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    assert "apikey:manage" in listing["errors"][0]["message"]
    # ...and creating another key returns the expected-error member.
    child = (await gql(http, create, as_key))["data"]["createApiKey"]
    assert child["code"] == "FORBIDDEN"

    revoke = """
    mutation ($id: String!) {
      revokeApiKey(id: $id) { __typename ... on OperationError { code } }
    }"""
    assert (await gql(http, revoke, user.headers, id=made["id"]))["data"]["revokeApiKey"] == {
        "__typename": "Done"
    }
    gone = await gql(http, ME, as_key)
    assert gone["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    again = (await gql(http, revoke, user.headers, id=made["id"]))["data"]["revokeApiKey"]
    assert again == {"__typename": "OperationError", "code": "NOT_FOUND"}


async def test_two_factor_login_through_graphql(http: httpx.AsyncClient) -> None:
    user = await new_user(http)
    setup = await gql(
        http,
        "mutation { setupTotp { __typename ... on TotpSetup { secret qrCode provisioningUri } } }",
        user.headers,
    )
    secret = setup["data"]["setupTotp"]["secret"]
    confirm = """
    mutation ($c: String!) { confirmTotp(input: {code: $c}) { __typename } }"""
    # The previous step's code: each code works once, and the login below takes the current one.
    previous = pyotp.TOTP(secret).at(time.time() - 30)
    assert (await gql(http, confirm, user.headers, c=previous))["data"]["confirmTotp"] == {
        "__typename": "Done"
    }
    step = (await gql(http, LOGIN, u=user.username, p=PASSWORD))["data"]["login"]
    assert step["__typename"] == "TwoFactorRequired" and step["requires2fa"] is True
    finish = """
    mutation ($t: String!, $c: String!) {
      loginTwoFactor(input: {tempToken: $t, code: $c}) {
        __typename ... on AuthTokens { user { totpEnabled } }
      }
    }"""
    done = await gql(http, finish, t=step["tempToken"], c=pyotp.TOTP(secret).now())
    assert done["data"]["loginTwoFactor"] == {
        "__typename": "AuthTokens",
        "user": {"totpEnabled": True},
    }


async def test_wrong_variable_types_are_graphql_errors_not_500(http: httpx.AsyncClient) -> None:
    response = await http.post("/graphql", json={"query": LOGIN, "variables": {"u": 5, "p": []}})
    assert response.status_code == 200
    assert response.json()["errors"]
    broken = await http.post(
        "/graphql", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert broken.status_code == 400


async def test_graphiql_is_served(http: httpx.AsyncClient) -> None:
    response = await http.get("/graphql", headers={"Accept": "text/html"})
    assert response.status_code == 200 and "graphiql" in response.text.lower()


async def test_key_is_usable_by_rest_and_graphql_alike(http: httpx.AsyncClient) -> None:
    user = await new_user(http)
    key = await new_api_key(http, user, scopes=["email:read"])
    rest = await http.get("/api/v1/auth/api-keys", headers={"X-API-Key": key["key"]})
    graph = await gql(http, "{ apiKeys { id } }", {"X-API-Key": key["key"]})
    assert rest.status_code == 403 and graph["errors"][0]["extensions"]["code"] == "FORBIDDEN"
