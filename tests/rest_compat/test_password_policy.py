"""The password policy: what a guesser tries first is refused wherever a password is set.

One rule for user passwords (register, change, admin reset), mailbox passwords
(create, set; REST and GraphQL) and the CLI, each refusal with its reason.
"""

from __future__ import annotations

import secrets
import string
from pathlib import Path

import httpx
import pytest

from accounts import PASSWORD, admin, graphql, new_mailbox, new_user
from processes import cli_env, mailcue

# (password, a word the refusal must contain)
TRIVIAL = [
    ("password", "common"),
    ("12345678", "common"),
    ("        ", "spaces"),
    ("\t \t \t \t ", "spaces"),
    ("aaaaaaaa", "different characters"),
    ("abababab", "different characters"),
    ("Password1", "common"),
    ("P@ssw0rd!", "common"),
    ("Summer2024!", "common"),
    ("iloveyou123", "common"),
    ("qwertyui", "run"),
    ("98765432", "run"),
    ("bcdefghi", "run"),
    ("wxyzwxyzwxyz", "repeated"),
    ("2468xyz!2468xyz!", "repeated"),
]
GOOD = ["correct-horse-battery", "seven lilac ferries", "Gq8#vR2m", "brand-new-pass"]


def register_body(username: str, password: str) -> dict[str, str]:
    return {"username": username, "email": f"{username}@example.test", "password": password}


@pytest.mark.parametrize(("password", "reason"), TRIVIAL)
async def test_register_refuses_trivial_passwords_with_the_reason(
    http: httpx.AsyncClient, password: str, reason: str
) -> None:
    boss = await admin(http)
    username = f"p{secrets.token_hex(4)}"
    response = await http.post(
        "/api/v1/auth/register", headers=boss.headers, json=register_body(username, password)
    )
    assert response.status_code == 400, response.text
    assert reason in response.json()["detail"]
    assert response.json()["detail"].startswith("Password ")


async def test_good_passwords_pass(http: httpx.AsyncClient) -> None:
    boss = await admin(http)
    for password in GOOD:
        username = f"g{secrets.token_hex(4)}"
        response = await http.post(
            "/api/v1/auth/register", headers=boss.headers, json=register_body(username, password)
        )
        assert response.status_code == 201, (password, response.text)


async def test_a_password_may_not_be_the_accounts_own_name(http: httpx.AsyncClient) -> None:
    boss = await admin(http)
    username = "fred" + "".join(secrets.choice(string.ascii_lowercase) for _ in range(6))
    tries = [username, username.upper() + "2024", f"{username}@example.test"]
    for password in tries:
        response = await http.post(
            "/api/v1/auth/register", headers=boss.headers, json=register_body(username, password)
        )
        assert response.status_code == 400, (password, response.text)
        assert "username or email" in response.json()["detail"]


async def test_change_and_reset_follow_the_same_policy(http: httpx.AsyncClient) -> None:
    user = await new_user(http)
    changed = await http.put(
        "/api/v1/auth/password",
        headers=user.headers,
        json={"current_password": PASSWORD, "new_password": "12345678"},
    )
    assert changed.status_code == 400 and "common" in changed.json()["detail"], changed.text
    boss = await admin(http)
    reset = await http.put(
        "/api/v1/auth/admin/reset-password",
        headers=boss.headers,
        json={"username": user.username, "new_password": user.username + "!!"},
    )
    assert reset.status_code == 400 and "username" in reset.json()["detail"], reset.text


SET_PASSWORD = """
mutation Set($address: String!, $password: String!) {
  setMailboxPassword(address: $address, input: {password: $password}) {
    __typename ... on OperationError { code message }
  }
}"""


async def test_mailbox_passwords_follow_the_same_policy(http: httpx.AsyncClient) -> None:
    owner = await new_user(http)
    created = await http.post(
        "/api/v1/mailboxes",
        headers=owner.headers,
        json={"username": f"m{secrets.token_hex(3)}", "password": "12345678"},
    )
    assert created.status_code == 400 and "common" in created.json()["detail"], created.text
    address = await new_mailbox(http, owner)
    same = await http.put(
        f"/api/v1/mailboxes/{address}/password", headers=owner.headers, json={"password": address}
    )
    assert same.status_code == 400 and "username or email" in same.json()["detail"], same.text
    spaces = (await graphql(http, owner, SET_PASSWORD, address=address, password=" " * 10))[
        "data"
    ]["setMailboxPassword"]
    assert spaces["code"] == "INVALID" and "spaces" in spaces["message"], spaces


def test_the_cli_follows_the_same_policy(tmp_path: Path) -> None:
    workdir = tmp_path / "cwd"
    workdir.mkdir()
    env = cli_env(tmp_path / "data")
    address = "cli-policy@mailcue.local"
    admin_made = mailcue(
        "create-admin", "--username", "ops", "--password", "password1", env=env, cwd=workdir
    )
    box_made = mailcue(
        "create-mailbox", "--address", address, "--password", "qwertyuiop", env=env, cwd=workdir
    )
    plain_box = mailcue("create-mailbox", "--address", address, env=env, cwd=workdir)
    set_weak = mailcue(
        "set-password", "--address", address, "--password", "11111111", env=env, cwd=workdir
    )
    for refused in (admin_made, box_made, set_weak):
        assert refused.returncode == 2, refused.stdout + refused.stderr
        last = refused.stderr.splitlines()[-1]
        assert last.startswith("mailcue: error: Password "), refused.stderr
    assert plain_box.returncode == 0, plain_box.stderr
