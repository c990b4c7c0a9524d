"""Two-factor single use across nodes: what node A accepted, node B refuses.

Two ``mailcue serve`` processes share one PostgreSQL database and one secret,
as behind a load balancer; an attacker who replays a code or a step token
against the other node gets nothing.
"""

from __future__ import annotations

import secrets
import time
from pathlib import Path

import httpx
import pyotp
import pytest

from processes import ServeProcess, cli_env
from services import fresh_postgres_database

pytestmark = [pytest.mark.postgres]

ADMIN_PASSWORD = "two-factor-nodes-admin"
LOGIN = "/api/v1/auth/login"
FINISH = "/api/v1/auth/login/2fa"


def step_token(http: httpx.Client) -> str:
    response = http.post(LOGIN, json={"username": "admin", "password": ADMIN_PASSWORD})
    assert response.json().get("requires_2fa") is True, response.text
    return str(response.json()["temp_token"])


async def test_a_code_and_a_step_token_used_on_one_node_are_refused_by_the_other(
    tmp_path: Path,
) -> None:
    async with fresh_postgres_database() as database_url:
        shared = {
            "MAILCUE_DATABASE_URL": database_url,
            "MAILCUE_ADMIN_PASSWORD": ADMIN_PASSWORD,
            "MAILCUE_SECRET_KEY": secrets.token_urlsafe(48),
        }
        env_a, env_b = cli_env(tmp_path / "a", **shared), cli_env(tmp_path / "b", **shared)
        with ServeProcess(env_a, tmp_path) as node_a:
            url_a = node_a.wait_listening()
            with ServeProcess(env_b, tmp_path) as node_b:
                url_b = node_b.wait_listening()
                with (
                    httpx.Client(base_url=url_a, timeout=30) as a,
                    httpx.Client(base_url=url_b, timeout=30) as b,
                ):
                    login = a.post(LOGIN, json={"username": "admin", "password": ADMIN_PASSWORD})
                    headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
                    secret = a.post("/api/v1/auth/totp/setup", headers=headers).json()["secret"]
                    totp = pyotp.TOTP(secret)
                    previous = totp.at(time.time() - 30)
                    on = a.post(
                        "/api/v1/auth/totp/confirm", headers=headers, json={"code": previous}
                    )
                    assert on.status_code == 200, on.text

                    token, code = step_token(a), totp.now()
                    first = a.post(FINISH, json={"temp_token": token, "code": code})
                    same_code = b.post(FINISH, json={"temp_token": step_token(b), "code": code})
                    next_code = totp.at(time.time() + 30)
                    same_token = b.post(FINISH, json={"temp_token": token, "code": next_code})

                    assert first.status_code == 200, first.text
                    assert same_code.status_code == 401, same_code.text
                    assert same_token.status_code == 401, same_token.text
                assert node_b.terminate() == 0, node_b.output
            assert node_a.terminate() == 0, node_a.output
