"""Two-factor replay from the attacker's side: a TOTP code and a step token each work once.

A code seen over a shoulder (or in a proxy log) must not finish a second
login, and a ``temp_token`` must not be finished twice, not even with a fresh
code. The drift window accepts the previous and next code too, which the
tests use to have distinct valid codes at hand.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import pyotp

from accounts import PASSWORD, Account, graphql, new_user

LOGIN = "/api/v1/auth/login"
FINISH = "/api/v1/auth/login/2fa"
STEP = 30


def code_at(totp: pyotp.TOTP, offset_steps: int) -> str:
    return totp.at(time.time() + offset_steps * STEP)


async def with_totp(http: httpx.AsyncClient) -> tuple[Account, pyotp.TOTP]:
    """A user with TOTP on, confirmed with the previous step's code (the current one is free)."""
    user = await new_user(http)
    setup = await http.post("/api/v1/auth/totp/setup", headers=user.headers)
    totp = pyotp.TOTP(setup.json()["secret"])
    confirmed = await http.post(
        "/api/v1/auth/totp/confirm", headers=user.headers, json={"code": code_at(totp, -1)}
    )
    assert confirmed.status_code == 200, confirmed.text
    return user, totp


async def step_token(http: httpx.AsyncClient, user: Account) -> str:
    response = await http.post(LOGIN, json={"username": user.username, "password": PASSWORD})
    body: dict[str, Any] = response.json()
    assert body.get("requires_2fa") is True, body
    return str(body["temp_token"])


async def test_one_code_finishes_one_login(http: httpx.AsyncClient) -> None:
    user, totp = await with_totp(http)
    code = totp.now()
    first = await http.post(
        FINISH, json={"temp_token": await step_token(http, user), "code": code}
    )
    second = await http.post(
        FINISH, json={"temp_token": await step_token(http, user), "code": code}
    )
    assert first.status_code == 200, first.text
    assert second.status_code == 401, second.text
    assert "already used" in second.json()["detail"]
    # A later code still works: the user is not locked out, only the replay is.
    later = await http.post(
        FINISH, json={"temp_token": await step_token(http, user), "code": code_at(totp, 1)}
    )
    assert later.status_code == 200, later.text


async def test_a_step_token_works_once(http: httpx.AsyncClient) -> None:
    user, totp = await with_totp(http)
    token = await step_token(http, user)
    first = await http.post(FINISH, json={"temp_token": token, "code": totp.now()})
    again = await http.post(FINISH, json={"temp_token": token, "code": code_at(totp, 1)})
    assert first.status_code == 200, first.text
    assert again.status_code == 401, again.text
    # The refused replay spent nothing: that next code still finishes a new login.
    fresh = await http.post(
        FINISH, json={"temp_token": await step_token(http, user), "code": code_at(totp, 1)}
    )
    assert fresh.status_code == 200, fresh.text


async def test_two_racing_finishes_of_one_token_give_one_session(
    http: httpx.AsyncClient,
) -> None:
    user, totp = await with_totp(http)
    token = await step_token(http, user)
    answers = await asyncio.gather(
        http.post(FINISH, json={"temp_token": token, "code": totp.now()}),
        http.post(FINISH, json={"temp_token": token, "code": code_at(totp, 1)}),
    )
    assert sorted(a.status_code for a in answers) == [200, 401]


async def test_the_confirming_code_cannot_turn_two_factor_off(http: httpx.AsyncClient) -> None:
    user = await new_user(http)
    setup = await http.post("/api/v1/auth/totp/setup", headers=user.headers)
    totp = pyotp.TOTP(setup.json()["secret"])
    code = totp.now()
    on = await http.post("/api/v1/auth/totp/confirm", headers=user.headers, json={"code": code})
    off = await http.post(
        "/api/v1/auth/totp/disable", headers=user.headers, json={"code": code, "password": ""}
    )
    assert on.status_code == 200, on.text
    assert off.status_code == 400, off.text
    me = await http.get("/api/v1/auth/me", headers=user.headers)
    assert me.json()["totp_enabled"] is True


FINISH_GQL = """
mutation ($t: String!, $c: String!) {
  loginTwoFactor(input: {tempToken: $t, code: $c}) {
    __typename ... on OperationError { code message }
  }
}"""


async def test_graphql_refuses_the_replay_too(http: httpx.AsyncClient) -> None:
    user, totp = await with_totp(http)
    token = await step_token(http, user)
    first = await graphql(http, None, FINISH_GQL, t=token, c=totp.now())
    again = await graphql(http, None, FINISH_GQL, t=token, c=code_at(totp, 1))
    assert first["data"]["loginTwoFactor"]["__typename"] == "AuthTokens"
    assert again["data"]["loginTwoFactor"]["code"] == "UNAUTHENTICATED"
