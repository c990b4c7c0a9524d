"""Authentication over REST, from the user's and the attacker's side."""

from __future__ import annotations

import asyncio
import secrets
import time

import httpx
import pyotp

from accounts import PASSWORD, Account, admin, login, new_user

LOGIN = "/api/v1/auth/login"
ME = "/api/v1/auth/me"
REFRESH = "/api/v1/auth/refresh"


async def test_login_returns_tokens_user_and_httponly_cookie(http: httpx.AsyncClient) -> None:
    account = await new_user(http)
    response = await http.post(LOGIN, json={"username": account.username, "password": PASSWORD})
    assert response.status_code == 200
    body = response.json()
    assert body["token_type"] == "bearer"
    assert body["access_token"] and body["refresh_token"]
    assert body["user"]["username"] == account.username
    assert set(body["user"]) >= {
        "id",
        "email",
        "is_admin",
        "is_active",
        "created_at",
        "totp_enabled",
        "max_mailboxes",
    }
    cookie = response.headers["set-cookie"]
    assert "refresh_token=" in cookie and "HttpOnly" in cookie and "SameSite=strict" in cookie
    me = await http.get(ME, headers={"Authorization": f"Bearer {body['access_token']}"})
    assert me.status_code == 200 and me.json()["username"] == account.username


async def test_wrong_password_and_unknown_user_answer_alike(http: httpx.AsyncClient) -> None:
    account = await new_user(http)
    wrong = await http.post(LOGIN, json={"username": account.username, "password": "nope-nope"})
    ghost = await http.post(
        LOGIN, json={"username": "ghost-" + secrets.token_hex(4), "password": "nope-nope"}
    )
    assert wrong.status_code == ghost.status_code == 401
    assert wrong.json() == ghost.json() == {"detail": "Incorrect username or password"}
    assert "access_token" not in wrong.text and "set-cookie" not in wrong.headers


async def test_repeated_failures_are_rate_limited(http: httpx.AsyncClient) -> None:
    account = await new_user(http)
    statuses = [
        (
            await http.post(LOGIN, json={"username": account.username, "password": f"guess-{n}"})
        ).status_code
        for n in range(5)
    ]
    assert statuses == [401] * 5
    limited = await http.post(LOGIN, json={"username": account.username, "password": "guess-6"})
    assert limited.status_code == 429
    assert int(limited.headers["retry-after"]) > 0
    # Even the right password waits: the brake is on the (client, username) pair.
    # (The same wrong password again counts once: it tells a guesser nothing new.)
    right = await http.post(LOGIN, json={"username": account.username, "password": PASSWORD})
    assert right.status_code == 429


async def test_no_token_and_garbage_token_are_401(http: httpx.AsyncClient) -> None:
    assert (await http.get(ME)).status_code == 401
    garbage = await http.get(ME, headers={"Authorization": "Bearer not.a.jwt"})
    assert garbage.status_code == 401
    assert garbage.headers["www-authenticate"] == "Bearer"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_refresh_rotates_and_a_quick_reuse_of_the_last_token_changes_nothing(
    http: httpx.AsyncClient,
) -> None:
    """Two tabs refresh with the same token at once: the slower one is refused, nobody
    is signed out (the grace period, MAILCUE_REFRESH_REUSE_GRACE_SECONDS, 10 s here)."""
    account = await new_user(http)
    first = await http.post(REFRESH, json={"refresh_token": account.refresh_token})
    assert first.status_code == 200
    rotated = first.json()
    assert rotated["refresh_token"] != account.refresh_token
    assert (await http.get(ME, headers=bearer(rotated["access_token"]))).status_code == 200

    reuse = await http.post(REFRESH, json={"refresh_token": account.refresh_token})
    again = await http.post(REFRESH, json={"refresh_token": account.refresh_token})

    assert reuse.status_code == 401, reuse.text
    assert again.status_code == 401, again.text
    # The access token the rotation issued still works, and so does the new refresh token.
    assert (await http.get(ME, headers=bearer(rotated["access_token"]))).status_code == 200
    newest = await http.post(REFRESH, json={"refresh_token": rotated["refresh_token"]})
    assert newest.status_code == 200, newest.text
    assert (await http.get(ME, headers=bearer(newest.json()["access_token"]))).status_code == 200


async def test_two_refreshes_at_the_same_moment_keep_the_session(
    http: httpx.AsyncClient,
) -> None:
    account = await new_user(http)
    answers = await asyncio.gather(
        *(http.post(REFRESH, json={"refresh_token": account.refresh_token}) for _ in range(2))
    )
    codes = sorted(answer.status_code for answer in answers)
    assert codes == [200, 401], [a.text for a in answers]
    winner = next(answer for answer in answers if answer.status_code == 200).json()
    assert (await http.get(ME, headers=bearer(winner["access_token"]))).status_code == 200
    onward = await http.post(REFRESH, json={"refresh_token": winner["refresh_token"]})
    assert onward.status_code == 200, onward.text


async def test_reuse_of_an_older_token_revokes_the_family_even_within_the_grace(
    http: httpx.AsyncClient,
) -> None:
    account = await new_user(http)
    second = (await http.post(REFRESH, json={"refresh_token": account.refresh_token})).json()
    third = (await http.post(REFRESH, json={"refresh_token": second["refresh_token"]})).json()
    assert (await http.get(ME, headers=bearer(third["access_token"]))).status_code == 200

    # The first token was replaced two rotations ago: someone copied it. The session dies.
    reuse = await http.post(REFRESH, json={"refresh_token": account.refresh_token})

    assert reuse.status_code == 401
    newest = await http.post(REFRESH, json={"refresh_token": third["refresh_token"]})
    assert newest.status_code == 401
    assert (await http.get(ME, headers=bearer(third["access_token"]))).status_code == 401


async def test_refresh_reads_the_cookie(http: httpx.AsyncClient) -> None:
    account = await new_user(http)
    async with httpx.AsyncClient(base_url=str(http.base_url)) as browser:
        browser.cookies.set("refresh_token", account.refresh_token)
        response = await browser.post(REFRESH, headers={"X-MailCue-Refresh": "1"})
    assert response.status_code == 200
    assert response.json()["user"]["username"] == account.username


async def test_refresh_with_nothing_is_401(http: httpx.AsyncClient) -> None:
    async with httpx.AsyncClient(base_url=str(http.base_url)) as fresh:
        assert (await fresh.post(REFRESH)).status_code == 401
        assert (await fresh.post(REFRESH, json={"refresh_token": "made-up"})).status_code == 401


async def test_logout_kills_access_and_refresh_tokens_at_once(http: httpx.AsyncClient) -> None:
    account = await new_user(http)
    other_session = await login(http, account.username, PASSWORD)
    response = await http.post("/api/v1/auth/logout", headers=account.headers)
    assert response.status_code == 200
    assert 'refresh_token=""' in response.headers["set-cookie"]
    assert (await http.get(ME, headers=account.headers)).status_code == 401
    refresh = await http.post(REFRESH, json={"refresh_token": account.refresh_token})
    assert refresh.status_code == 401
    # Logging out one session leaves the user's other sessions alone.
    assert (await http.get(ME, headers=other_session.headers)).status_code == 200


async def test_register_needs_an_admin(http: httpx.AsyncClient) -> None:
    user = await new_user(http)
    body = {"username": "intruder", "email": "i@example.test", "password": "long-enough-1"}
    assert (await http.post("/api/v1/auth/register", json=body)).status_code == 401
    denied = await http.post("/api/v1/auth/register", headers=user.headers, json=body)
    assert denied.status_code == 403
    boss = await admin(http)
    created = await http.post("/api/v1/auth/register", headers=boss.headers, json=body)
    assert created.status_code == 201 and created.json()["is_admin"] is False
    again = await http.post("/api/v1/auth/register", headers=boss.headers, json=body)
    assert again.status_code == 409


async def test_register_rejects_bad_values(http: httpx.AsyncClient) -> None:
    boss = await admin(http)
    short = {"username": "shorty", "email": "s@example.test", "password": "short"}
    response = await http.post("/api/v1/auth/register", headers=boss.headers, json=short)
    assert response.status_code == 400 and "Password" in response.json()["detail"]
    bad_mail = {"username": "badmail", "email": "not-an-address", "password": "long-enough-1"}
    response = await http.post("/api/v1/auth/register", headers=boss.headers, json=bad_mail)
    assert response.status_code == 400
    sneaky = {"username": "../etc/passwd", "email": "x@example.test", "password": "long-enough-1"}
    response = await http.post("/api/v1/auth/register", headers=boss.headers, json=sneaky)
    assert response.status_code == 400


async def test_password_change_revokes_other_sessions(http: httpx.AsyncClient) -> None:
    account = await new_user(http)
    laptop = await login(http, account.username, PASSWORD)
    wrong = await http.put(
        "/api/v1/auth/password",
        headers=account.headers,
        json={"current_password": "not-it", "new_password": "brand-new-pass"},
    )
    assert wrong.status_code == 400
    response = await http.put(
        "/api/v1/auth/password",
        headers=account.headers,
        json={"current_password": PASSWORD, "new_password": "brand-new-pass"},
    )
    assert response.status_code == 200
    assert (await http.get(ME, headers=laptop.headers)).status_code == 401
    stale = await http.post(REFRESH, json={"refresh_token": laptop.refresh_token})
    assert stale.status_code == 401
    assert (await http.get(ME, headers=account.headers)).status_code == 200
    old = await http.post(LOGIN, json={"username": account.username, "password": PASSWORD})
    assert old.status_code == 401
    await login(http, account.username, "brand-new-pass")


async def _enable_totp(http: httpx.AsyncClient, account: Account) -> pyotp.TOTP:
    setup = await http.post("/api/v1/auth/totp/setup", headers=account.headers)
    assert setup.status_code == 200
    body = setup.json()
    assert body["qr_code"].startswith("data:image/png;base64,")
    assert body["provisioning_uri"].startswith("otpauth://totp/")
    totp = pyotp.TOTP(body["secret"])
    # Not enabled until confirmed.
    assert (await http.get(ME, headers=account.headers)).json()["totp_enabled"] is False
    bad = await http.post(
        "/api/v1/auth/totp/confirm",
        headers=account.headers,
        json={"code": "000000" if totp.now() != "000000" else "111111"},
    )
    assert bad.status_code == 400
    # The previous step's code (accepted for clock drift): each code works once, so the
    # current one is left for the login that follows.
    ok = await http.post(
        "/api/v1/auth/totp/confirm",
        headers=account.headers,
        json={"code": totp.at(time.time() - 30)},
    )
    assert ok.status_code == 200
    return totp


async def test_login_with_two_factor(http: httpx.AsyncClient) -> None:
    account = await new_user(http)
    totp = await _enable_totp(http, account)
    step = await http.post(LOGIN, json={"username": account.username, "password": PASSWORD})
    assert step.status_code == 200
    body = step.json()
    assert body["requires_2fa"] is True and "access_token" not in body
    # The step token is not an access token.
    assert (
        await http.get(ME, headers={"Authorization": f"Bearer {body['temp_token']}"})
    ).status_code == 401
    wrong = await http.post(
        "/api/v1/auth/login/2fa", json={"temp_token": body["temp_token"], "code": "12345x"}
    )
    assert wrong.status_code == 401
    done = await http.post(
        "/api/v1/auth/login/2fa", json={"temp_token": body["temp_token"], "code": totp.now()}
    )
    assert done.status_code == 200
    tokens = done.json()
    assert tokens["user"]["totp_enabled"] is True
    assert "refresh_token=" in done.headers["set-cookie"]
    forged = await http.post(
        "/api/v1/auth/login/2fa", json={"temp_token": "forged", "code": totp.now()}
    )
    assert forged.status_code == 401


async def test_disable_two_factor_needs_code_or_password(http: httpx.AsyncClient) -> None:
    account = await new_user(http)
    await _enable_totp(http, account)
    refused = await http.post(
        "/api/v1/auth/totp/disable",
        headers=account.headers,
        json={"password": "wrong-one", "code": "000000"},
    )
    assert refused.status_code == 400
    ok = await http.post(
        "/api/v1/auth/totp/disable",
        headers=account.headers,
        json={"password": PASSWORD, "code": ""},
    )
    assert ok.status_code == 200
    assert (await http.get(ME, headers=account.headers)).json()["totp_enabled"] is False


async def test_malformed_json_and_wrong_types_are_422(http: httpx.AsyncClient) -> None:
    broken = await http.post(
        LOGIN, content=b'{"username": ', headers={"content-type": "application/json"}
    )
    assert broken.status_code == 422
    typed = await http.post(LOGIN, json={"username": ["a"], "password": 5})
    assert typed.status_code == 422
    missing = await http.post(LOGIN, json={"username": "admin"})
    assert missing.status_code == 422
    not_object = await http.post(LOGIN, json=["admin", "pw"])
    assert not_object.status_code == 422
    boss = await admin(http)
    wrong_type = await http.post(
        "/api/v1/auth/register",
        headers=boss.headers,
        json={"username": "x", "email": "x@e.test", "password": "p" * 10, "max_mailboxes": "many"},
    )
    assert wrong_type.status_code == 422
    huge = await http.post(LOGIN, json={"username": "a" * 100_000, "password": "b" * 100_000})
    assert huge.status_code in (401, 429)


async def test_concurrent_logins_do_not_fail(http: httpx.AsyncClient) -> None:
    account = await new_user(http)
    results = await asyncio.gather(
        *(
            http.post(LOGIN, json={"username": account.username, "password": PASSWORD})
            for _ in range(8)
        )
    )
    assert [r.status_code for r in results] == [200] * 8


async def test_admin_manages_users(http: httpx.AsyncClient) -> None:
    boss = await admin(http)
    user = await new_user(http)
    listing = await http.get("/api/v1/auth/users", headers=boss.headers)
    assert listing.status_code == 200
    assert user.username in {u["username"] for u in listing.json()["users"]}
    assert (await http.get("/api/v1/auth/users", headers=user.headers)).status_code == 403
    user_id = user.user["id"]
    gone = await http.delete(f"/api/v1/auth/users/{user_id}", headers=boss.headers)
    assert gone.status_code == 204
    assert (await http.get(ME, headers=user.headers)).status_code == 401
    again = await http.post(LOGIN, json={"username": user.username, "password": PASSWORD})
    assert again.status_code == 401
    assert (
        await http.put("/api/v1/auth/users/not-a-uuid", headers=boss.headers, json={})
    ).status_code == 404


async def test_login_refresh_and_logout_ignore_dead_credentials(http: httpx.AsyncClient) -> None:
    account = await new_user(http)
    stale = {"Authorization": "Bearer expired.or.revoked"}
    login_response = await http.post(
        LOGIN, headers=stale, json={"username": account.username, "password": PASSWORD}
    )
    assert login_response.status_code == 200
    refreshed = await http.post(
        REFRESH, headers=stale, json={"refresh_token": login_response.json()["refresh_token"]}
    )
    assert refreshed.status_code == 200
    out = await http.post("/api/v1/auth/logout", headers=stale)
    assert out.status_code == 200 and 'refresh_token=""' in out.headers["set-cookie"]
