"""Numbers larger than any column: a clear 400, never a 500 (found by schemathesis)."""

from __future__ import annotations

import httpx
import pytest

from accounts import admin, new_user
from mailcue_server.app import MailcueServer

USERS = "/api/v1/auth/users"


@pytest.mark.parametrize("quota", [10**20, 2**63, 2**31, 1_000_001, -1])
async def test_a_mailbox_quota_out_of_range_is_refused(
    server: MailcueServer, http: httpx.AsyncClient, quota: int
) -> None:
    boss = await admin(http)
    user = await new_user(http)
    expected = {"detail": "max_mailboxes must be between 0 and 1000000"}

    created = await http.post(
        "/api/v1/auth/register",
        headers=boss.headers,
        json={
            "username": f"quota{abs(quota) % 1000}",
            "email": "quota@example.test",
            "password": "long-enough-password",
            "max_mailboxes": quota,
        },
    )
    updated = await http.put(
        f"{USERS}/{user.user['id']}", headers=boss.headers, json={"max_mailboxes": quota}
    )

    assert (created.status_code, created.json()) == (400, expected)
    assert (updated.status_code, updated.json()) == (400, expected)


async def test_the_largest_quota_is_kept(server: MailcueServer, http: httpx.AsyncClient) -> None:
    boss = await admin(http)
    user = await new_user(http)
    updated = await http.put(
        f"{USERS}/{user.user['id']}", headers=boss.headers, json={"max_mailboxes": 1_000_000}
    )
    assert updated.status_code == 200, updated.text
    assert updated.json()["max_mailboxes"] == 1_000_000
