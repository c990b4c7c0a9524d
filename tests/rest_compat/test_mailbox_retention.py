"""A mailbox's own retention limits over REST and GraphQL, from the owner's and attacker's side.

``PUT /api/v1/mailboxes/{address}/retention`` is our extension (the reference
API has no such route); the limits also show on the mailbox itself.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import pytest_asyncio

from accounts import Account, admin, graphql, new_api_key, new_mailbox, new_user, set_retention

BOX_PASSWORD = "mailbox-pass-1"
SET_RETENTION = """
mutation ($address: String!, $input: MailboxRetentionInput!) {
  setMailboxRetention(address: $address, input: $input) {
    __typename
    ... on MailboxRetention { address maxMessages maxAgeDays effectiveMaxMessages
                              effectiveMaxAgeDays }
    ... on OperationError { code message }
  }
}"""
READ_RETENTION = """
query ($address: String!) {
  mailboxRetention(address: $address) { maxMessages effectiveMaxAgeDays }
  mailboxes { mailboxes { address retentionMaxMessages retentionMaxAgeDays } }
}"""


@pytest_asyncio.fixture
async def boss(http: httpx.AsyncClient) -> AsyncIterator[Account]:
    """The admin; the server-wide limits are off again after each test."""
    account = await admin(http)
    yield account
    await set_retention(http, account, messages=0, days=0)


def url(address: str) -> str:
    return f"/api/v1/mailboxes/{address}/retention"


async def put(
    http: httpx.AsyncClient, headers: dict[str, str], address: str, body: Any
) -> httpx.Response:
    return await http.put(url(address), headers=headers, json=body)


async def listed(http: httpx.AsyncClient, account: Account, address: str) -> dict[str, Any]:
    response = await http.get("/api/v1/mailboxes", headers=account.headers)
    [box] = [m for m in response.json()["mailboxes"] if m["address"] == address]
    return dict(box)


# --- setting and reading -------------------------------------------------------------------------


async def test_own_limits_are_saved_and_answered_with_the_effective_ones(
    http: httpx.AsyncClient, boss: Account
) -> None:
    address = await new_mailbox(http, boss, password=BOX_PASSWORD)
    fresh = await http.get(url(address), headers=boss.headers)
    assert fresh.status_code == 200
    assert fresh.json() == {
        "address": address,
        "max_messages": None,
        "max_age_days": None,
        "effective_max_messages": 0,
        "effective_max_age_days": 0,
    }
    response = await put(http, boss.headers, address, {"max_messages": 5, "max_age_days": 10})
    assert response.status_code == 200, response.text
    assert response.json() == {
        "address": address,
        "max_messages": 5,
        "max_age_days": 10,
        "effective_max_messages": 5,
        "effective_max_age_days": 10,
    }
    assert (await http.get(url(address), headers=boss.headers)).json() == response.json()
    box = await listed(http, boss, address)
    assert (box["retention_max_messages"], box["retention_max_age_days"]) == (5, 10)


async def test_null_follows_the_server_and_zero_is_no_limit(
    http: httpx.AsyncClient, boss: Account
) -> None:
    address = await new_mailbox(http, boss, password=BOX_PASSWORD)
    await set_retention(http, boss, messages=100, days=30)
    response = await put(http, boss.headers, address, {"max_messages": None, "max_age_days": 0})
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["max_messages"], body["max_age_days"]) == (None, 0)
    assert (body["effective_max_messages"], body["effective_max_age_days"]) == (100, 0)
    # PUT replaces both: a field left out follows the server again.
    response = await put(http, boss.headers, address, {})
    assert response.status_code == 200
    body = response.json()
    assert (body["max_messages"], body["max_age_days"]) == (None, None)
    assert (body["effective_max_messages"], body["effective_max_age_days"]) == (100, 30)
    # A change of the server-wide limits shows at once.
    await set_retention(http, boss, messages=7, days=0)
    body = (await http.get(url(address), headers=boss.headers)).json()
    assert (body["effective_max_messages"], body["effective_max_age_days"]) == (7, 0)


@pytest.mark.parametrize(
    ("body", "status", "detail"),
    [
        ({"max_messages": -1}, 400, "max_messages must be between 0 and 10000000"),
        ({"max_messages": 10_000_001}, 400, "max_messages must be between"),
        ({"max_age_days": -5}, 400, "max_age_days must be between 0 and 36500"),
        ({"max_age_days": 36_501}, 400, "max_age_days must be between"),
        ({"max_age_days": 10**30}, 400, "max_age_days must be between"),
        ({"max_messages": "lots"}, 422, None),
        ({"max_messages": 1.5}, 422, None),
        ({"max_age_days": [30]}, 422, None),
        (None, 422, None),
    ],
)
async def test_bad_values_are_refused_and_change_nothing(
    http: httpx.AsyncClient, boss: Account, body: Any, status: int, detail: str | None
) -> None:
    address = await new_mailbox(http, boss, password=BOX_PASSWORD)
    assert (await put(http, boss.headers, address, {"max_messages": 3})).status_code == 200
    response = await put(http, boss.headers, address, body)
    assert response.status_code == status, response.text
    if detail is not None:
        assert detail in response.json()["detail"]
    assert (await http.get(url(address), headers=boss.headers)).json()["max_messages"] == 3


# --- who may ---------------------------------------------------------------------------------


async def test_an_owner_may_tighten_but_not_loosen_the_server_limits(
    http: httpx.AsyncClient, boss: Account
) -> None:
    owner = await new_user(http)
    address = await new_mailbox(http, owner, password=BOX_PASSWORD)
    await set_retention(http, boss, messages=100, days=30)
    tighter = await put(http, owner.headers, address, {"max_messages": 50, "max_age_days": 7})
    assert tighter.status_code == 200, tighter.text
    assert tighter.json()["effective_max_messages"] == 50
    for body in ({"max_messages": 0}, {"max_messages": 101}, {"max_age_days": 31}):
        refused = await put(http, owner.headers, address, body)
        assert refused.status_code == 403, body
        assert "only an administrator" in refused.json()["detail"]
    assert (await http.get(url(address), headers=owner.headers)).json()["max_messages"] == 50
    assert (await put(http, owner.headers, address, {})).status_code == 200  # follow the server
    # The admin may exempt the mailbox.
    exempt = await put(http, boss.headers, address, {"max_messages": 0, "max_age_days": 0})
    assert exempt.status_code == 200
    # Without server-wide limits, an owner sets any limit in range.
    await set_retention(http, boss, messages=0, days=0)
    assert (await put(http, owner.headers, address, {"max_messages": 0})).status_code == 200
    assert (await put(http, owner.headers, address, {"max_age_days": 999})).status_code == 200


async def test_the_attacker_side(http: httpx.AsyncClient, boss: Account) -> None:
    owner = await new_user(http)
    other = await new_user(http)
    address = await new_mailbox(http, owner, password=BOX_PASSWORD)
    body = {"max_messages": 1, "max_age_days": 1}

    assert (await put(http, {}, address, body)).status_code == 401
    assert (await http.get(url(address))).status_code == 401
    bad_token = {"Authorization": "Bearer not-a-token"}
    assert (await put(http, bad_token, address, body)).status_code == 401

    # Another user's mailbox answers like one that does not exist.
    theirs = await put(http, other.headers, address, body)
    assert theirs.status_code == 404
    assert (await http.get(url(address), headers=other.headers)).status_code == 404
    assert (await put(http, other.headers, "nobody@example.test", body)).status_code == 404

    reader = {"X-API-Key": (await new_api_key(http, owner, scopes=["mailbox:read"]))["key"]}
    assert (await put(http, reader, address, body)).status_code == 403
    assert (await http.get(url(address), headers=reader)).status_code == 200
    emails_only = {"X-API-Key": (await new_api_key(http, owner, scopes=["email:delete"]))["key"]}
    assert (await put(http, emails_only, address, body)).status_code == 403
    elsewhere = await new_mailbox(http, owner, password=BOX_PASSWORD)
    narrowed = await new_api_key(
        http, owner, scopes=["mailbox:read", "mailbox:write"], allowed_mailboxes=[elsewhere]
    )
    assert (await put(http, {"X-API-Key": narrowed["key"]}, address, body)).status_code == 404
    assert (await put(http, {"X-API-Key": narrowed["key"]}, elsewhere, body)).status_code == 200

    # Nothing the attacker tried changed the mailbox.
    state = (await http.get(url(address), headers=owner.headers)).json()
    assert (state["max_messages"], state["max_age_days"]) == (None, None)


# --- GraphQL ---------------------------------------------------------------------------------


async def test_graphql_sets_and_reads_the_same_limits(
    http: httpx.AsyncClient, boss: Account
) -> None:
    owner = await new_user(http)
    address = await new_mailbox(http, owner, password=BOX_PASSWORD)
    await set_retention(http, boss, messages=0, days=14)
    done = await graphql(
        http, owner, SET_RETENTION, address=address, input={"maxMessages": 20, "maxAgeDays": None}
    )
    assert done["data"]["setMailboxRetention"] == {
        "__typename": "MailboxRetention",
        "address": address,
        "maxMessages": 20,
        "maxAgeDays": None,
        "effectiveMaxMessages": 20,
        "effectiveMaxAgeDays": 14,
    }
    read = await graphql(http, owner, READ_RETENTION, address=address)
    assert read["data"]["mailboxRetention"] == {"maxMessages": 20, "effectiveMaxAgeDays": 14}
    [box] = [m for m in read["data"]["mailboxes"]["mailboxes"] if m["address"] == address]
    assert (box["retentionMaxMessages"], box["retentionMaxAgeDays"]) == (20, None)
    # REST reads what GraphQL wrote.
    assert (await http.get(url(address), headers=owner.headers)).json()["max_messages"] == 20

    for variables, code in (
        ({"maxMessages": -1}, "INVALID"),
        ({"maxAgeDays": 0}, "FORBIDDEN"),  # looser than the server's 14 days
    ):
        failed = await graphql(http, owner, SET_RETENTION, address=address, input=variables)
        assert failed["data"]["setMailboxRetention"]["code"] == code
    stranger = await new_user(http)
    hidden = await graphql(http, stranger, SET_RETENTION, address=address, input={})
    assert hidden["data"]["setMailboxRetention"]["code"] == "NOT_FOUND"
    unread = await graphql(http, stranger, READ_RETENTION, address=address)
    assert unread["errors"][0]["extensions"]["code"] == "NOT_FOUND"
