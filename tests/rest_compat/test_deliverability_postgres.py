"""The deliverability and send-canary routes on a node backed by PostgreSQL.

The same flows as on SQLite, through HTTP, so every query they run meets
PostgreSQL's types and limits (SQLite does not enforce column lengths).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
import pytest_asyncio

from accounts import admin, graphql, new_mailbox, new_user
from conftest import node_settings
from mailcue_server.app import MailcueServer
from services import fresh_postgres_database

pytestmark = pytest.mark.postgres


@pytest_asyncio.fixture(scope="module")
async def server(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[MailcueServer]:
    async with fresh_postgres_database() as url:
        node = MailcueServer(
            node_settings(tmp_path_factory.mktemp("deliverability-pg"), database_url=url)
        )
        await node.start()
        yield node
        await node.stop()


def dsn(addresses: list[str]) -> str:
    blocks = "".join(
        f"\r\nFinal-Recipient: rfc822; {a}\r\nAction: failed\r\nStatus: 5.1.1\r\n"
        for a in addresses
    )
    return (
        "Subject: failure\r\nMIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="b"\r\n\r\n'
        "--b\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.test\r\n"
        f"{blocks}\r\n--b--\r\n"
    )


async def test_history_suppression_and_calibration(http: httpx.AsyncClient) -> None:
    user = await new_user(http)
    headers = user.headers
    batch = await http.post(
        "/api/v1/emails/validate-batch",
        json={"emails": ["no-at-sign", "two@@x.test"], "target_bounce_rate": 0.5},
        headers=headers,
    )
    assert batch.status_code == 200, batch.text
    assert [r["status"] for r in batch.json()["results"]] == ["invalid", "invalid"]
    # GraphQL inputs skip REST's length checks: a huge "address" is still just invalid.
    huge = await graphql(
        http, user, "query ($e: String!) { validateEmail(email: $e) { status } }", e="x" * 5000
    )
    assert huge["data"]["validateEmail"] == {"status": "INVALID"}
    feedback = await http.post(
        "/api/v1/emails/validation-feedback",
        json={"email": "no-at-sign@far.test", "outcome": "delivered"},
        headers=headers,
    )
    assert feedback.status_code == 200
    ingested = await http.post(
        "/api/v1/emails/bounces/ingest",
        json={"raw_message": dsn([f"u{n}@far.test" for n in range(5)])},
        headers=headers,
    )
    assert ingested.json()["recorded"] == 5
    suppressed = (await http.get("/api/v1/emails/suppressed-domains", headers=headers)).json()
    assert [
        (s["domain"], s["hard_bounces"], s["observations"]) for s in suppressed["suppressions"]
    ] == [("far.test", 5, 6)]
    calibration = await http.get("/api/v1/emails/validation-calibration", headers=headers)
    assert calibration.status_code == 200 and calibration.json()["sample_size"] == 0


async def test_a_send_canary(http: httpx.AsyncClient) -> None:
    user = await new_user(http)
    box = await new_mailbox(http, user)
    body = {
        "recipients": ["s@one.test", "h@one.test", "s@far2.test"],
        "from_address": box,
        "subject": "Launch",
        "sample_size": 1,
    }
    created = await http.post("/api/v1/emails/send-canaries", json=body, headers=user.headers)
    assert created.status_code == 201, created.text
    canary = created.json()
    decided = await http.post(
        f"/api/v1/emails/send-canaries/{canary['id']}/decide", headers=user.headers
    )
    assert decided.json()["status"] == "released"
    statuses = {r["email"]: r["status"] for r in decided.json()["recipients"]}
    assert statuses == {"s@one.test": "sent", "h@one.test": "released", "s@far2.test": "sent"}
    boss = await admin(http)
    held = await http.get("/api/v1/emails", params={"mailbox": "h@one.test"}, headers=boss.headers)
    assert held.json()["total"] == 1
    listed = await http.get("/api/v1/emails/send-canaries", headers=user.headers)
    assert listed.json()["total"] == 1
    # A reply-to list longer than any column width is kept whole.
    reply_to = ", ".join(f"reply{n}@example.test" for n in range(60))
    long = await http.post(
        "/api/v1/emails/send-canaries", json={**body, "reply_to": reply_to}, headers=user.headers
    )
    assert long.status_code == 201, long.text
    cancelled = await http.post(
        f"/api/v1/emails/send-canaries/{long.json()['id']}/cancel", headers=user.headers
    )
    assert cancelled.json()["status"] == "cancelled"
