"""Staged sends (/api/v1/emails/send-canaries and the GraphQL twins) on a test-mode node.

In test mode nothing leaves the machine: every message goes through the
normal send path and lands in the recipient's INBOX here, so the tests see
exactly who was sent what, and when.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import pytest_asyncio

from accounts import Account, admin, graphql, new_api_key, new_mailbox, new_user
from conftest import node_settings
from mailcue_server.app import MailcueServer

CANARIES = "/api/v1/emails/send-canaries"
INGEST = "/api/v1/emails/bounces/ingest"
FEEDBACK = "/api/v1/emails/validation-feedback"
WAIT = 10.0


@pytest_asyncio.fixture(scope="module")
async def server(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[MailcueServer]:
    """This module's node looks for canaries due for a decision five times a second."""
    node = MailcueServer(
        node_settings(tmp_path_factory.mktemp("canaries"), send_canary_interval=0.2)
    )
    await node.start()
    yield node
    await node.stop()


@pytest.fixture
def later(server: MailcueServer) -> Iterator[Any]:
    """Move the node's clock forward (``later(minutes)``); it is put back after the test."""
    assert server.services is not None
    services = server.services
    original = services.clock

    def shift(minutes: float) -> None:
        services.clock = lambda: datetime.now(UTC) + timedelta(minutes=minutes)

    yield shift
    services.clock = original


@pytest_asyncio.fixture(scope="module")
async def boss(server: MailcueServer) -> Account:
    async with httpx.AsyncClient(base_url=server.http_url, timeout=10) as client:
        return await admin(client)


@pytest_asyncio.fixture(scope="module")
async def shared_sender(server: MailcueServer) -> tuple[Account, str]:
    """One user with a mailbox, for tests whose requests must all be refused."""
    async with httpx.AsyncClient(base_url=server.http_url, timeout=10) as client:
        return await sender(client)


async def sender(http: httpx.AsyncClient) -> tuple[Account, str]:
    """A regular user and a mailbox of theirs to send from."""
    user = await new_user(http)
    return user, await new_mailbox(http, user)


async def create(http: httpx.AsyncClient, who: Account, **body: Any) -> dict[str, Any]:
    response = await http.post(CANARIES, json={"subject": "Launch", **body}, headers=who.headers)
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result


async def call(http: httpx.AsyncClient, who: Account, verb: str, canary: str) -> httpx.Response:
    return await http.post(f"{CANARIES}/{canary}/{verb}", headers=who.headers)


async def inbox(http: httpx.AsyncClient, boss: Account, address: str) -> list[str]:
    """Subjects in the INBOX of ``address`` (an admin sees an empty list before any mail)."""
    response = await http.get("/api/v1/emails", params={"mailbox": address}, headers=boss.headers)
    assert response.status_code == 200, response.text
    return [e["subject"] for e in response.json()["emails"]]


async def arrives(http: httpx.AsyncClient, boss: Account, address: str) -> list[str]:
    async with asyncio.timeout(WAIT):
        while not (subjects := await inbox(http, boss, address)):
            await asyncio.sleep(0.05)
    return subjects


def roles(canary: dict[str, Any]) -> dict[str, tuple[str, str]]:
    return {r["email"]: (r["role"], r["status"]) for r in canary["recipients"]}


def dsn(address: str, status: str) -> str:
    action = "failed" if status.startswith("5") else "delayed"
    return (
        "From: MAILER-DAEMON@mx.test\r\nSubject: Undelivered\r\nMIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="b"\r\n\r\n'
        "--b\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.test\r\n\r\n"
        f"Final-Recipient: rfc822; {address}\r\nAction: {action}\r\nStatus: {status}\r\n"
        f"Diagnostic-Code: smtp; {status[0]}50 {status} unknown user\r\n\r\n--b--\r\n"
    )


def domains() -> tuple[str, str]:
    tag = secrets.token_hex(3)
    return f"good{tag}.test", f"bad{tag}.test"


async def test_sample_first_then_the_decision_releases_per_domain(
    http: httpx.AsyncClient, boss: Account
) -> None:
    user, box = await sender(http)
    good, bad = domains()
    recipients = [f"a@{good}", f"b@{good}", f"c@{good}", f"a@{bad}", f"b@{bad}", f"c@{bad}"]
    recipients.append(f"A@{good}")  # the same address as a@: sent once
    canary = await create(
        http,
        user,
        recipients=recipients,
        from_address=box,
        body="Hello!",
        name="launch",
        from_name="Shop",
        sample_size=2,
        hold_minutes=45,
    )
    assert canary["status"] == "probing" and canary["name"] == "launch"
    assert (canary["total_recipients"], canary["sample_recipients"]) == (6, 4)
    assert canary["held_recipients"] == 2 and canary["from_address"] == box
    assert roles(canary) == {
        f"a@{good}": ("sample", "sent"),
        f"b@{good}": ("sample", "sent"),
        f"c@{good}": ("held", "pending"),
        f"a@{bad}": ("sample", "sent"),
        f"b@{bad}": ("sample", "sent"),
        f"c@{bad}": ("held", "pending"),
    }
    sample_sent = datetime.fromisoformat(canary["sample_sent_at"])
    due = datetime.fromisoformat(canary["decision_due_at"])
    assert due - sample_sent == timedelta(minutes=45) and canary["decided_at"] is None
    for address in (f"a@{good}", f"b@{good}", f"a@{bad}", f"b@{bad}"):
        assert await arrives(http, boss, address) == ["Launch"]
    assert await inbox(http, boss, f"c@{good}") == []  # held back until the decision
    # One sample at bad.test hard-bounces; its DSN names the recipient.
    ingested = await http.post(
        INGEST, json={"raw_message": dsn(f"a@{bad}", "5.1.1")}, headers=user.headers
    )
    assert ingested.json()["recorded"] == 1
    seen = (await http.get(f"{CANARIES}/{canary['id']}", headers=user.headers)).json()
    bounced = next(r for r in seen["recipients"] if r["email"] == f"a@{bad}")
    assert (bounced["status"], bounced["smtp_code"], bounced["enhanced_status"]) == (
        "hard_bounce",
        550,
        "5.1.1",
    )
    assert bounced["resolved_at"] and seen["hard_bounces"] == 1

    decided = await call(http, user, "decide", canary["id"])
    assert decided.status_code == 200, decided.text
    body = decided.json()
    assert body["status"] == "released" and body["decided_at"]
    assert roles(body)[f"c@{good}"] == ("held", "released")
    assert roles(body)[f"c@{bad}"] == ("held", "blocked")
    assert body["decision_reason"] == (
        f"Released {good}; blocked: 1 of 2 sampled at {bad} hard-bounced (50% > 0%)"
    )
    assert await arrives(http, boss, f"c@{good}") == ["Launch"]
    await asyncio.sleep(0.3)
    assert await inbox(http, boss, f"c@{bad}") == []  # blocked: never sent
    # The sender kept one Sent copy per message that went out.
    sent = await http.get(
        "/api/v1/emails", params={"mailbox": box, "folder": "Sent"}, headers=user.headers
    )
    assert sent.json()["total"] == 5
    # Decided is decided.
    again = await call(http, user, "decide", canary["id"])
    assert again.status_code == 409 and "already released" in again.json()["detail"]
    assert (await call(http, user, "cancel", canary["id"])).status_code == 409


async def test_the_threshold_and_soft_bounces(http: httpx.AsyncClient) -> None:
    user, box = await sender(http)
    good, bad = domains()
    recipients = [f"s{n}@{bad}" for n in range(4)] + [f"h@{bad}", f"s@{good}"]
    canary = await create(
        http,
        user,
        recipients=recipients,
        from_address=box,
        sample_size=4,
        bounce_threshold=0.25,
        auto_release=False,
    )
    # One hard bounce in four is 25%: not over the threshold. Soft bounces never count.
    for address, status in ((f"s0@{bad}", "5.1.1"), (f"s1@{bad}", "4.2.2")):
        await http.post(INGEST, json={"raw_message": dsn(address, status)}, headers=user.headers)
    await http.post(
        FEEDBACK, json={"email": f"s@{good}", "outcome": "soft_bounce"}, headers=user.headers
    )
    body = (await call(http, user, "decide", canary["id"])).json()
    assert body["status"] == "released" and (body["hard_bounces"], body["soft_bounces"]) == (1, 2)
    assert roles(body)[f"h@{bad}"] == ("held", "released")
    assert roles(body)[f"s@{good}"] == ("sample", "soft_bounce")


async def test_suppressed_and_bounced_recipients_are_skipped(
    http: httpx.AsyncClient, boss: Account
) -> None:
    user, box = await sender(http)
    good, paused = domains()
    for n in range(5):  # five hard bounces at the domain: it is suppressed for this user
        await http.post(
            INGEST, json={"raw_message": dsn(f"x{n}@{paused}", "5.1.1")}, headers=user.headers
        )
    await http.post(
        FEEDBACK, json={"email": f"gone@{good}", "outcome": "hard_bounce"}, headers=user.headers
    )
    canary = await create(
        http,
        user,
        recipients=[f"gone@{good}", f"new@{paused}", f"ok@{good}", f"more@{good}"],
        from_address=box,
        sample_size=1,
    )
    assert roles(canary) == {
        f"gone@{good}": ("held", "skipped"),
        f"new@{paused}": ("held", "skipped"),
        f"ok@{good}": ("sample", "sent"),
        f"more@{good}": ("held", "pending"),
    }
    await arrives(http, boss, f"ok@{good}")
    assert await inbox(http, boss, f"gone@{good}") == []
    body = (await call(http, user, "decide", canary["id"])).json()
    assert body["status"] == "released" and roles(body)[f"gone@{good}"] == ("held", "skipped")
    assert await arrives(http, boss, f"more@{good}") == ["Launch"]

    nothing = await create(http, user, recipients=[f"b@{paused}"], from_address=box)
    assert nothing["status"] == "blocked" and nothing["decided_at"]
    assert "every recipient is suppressed" in nothing["decision_reason"]


async def test_the_hold_window_ends_on_its_own(
    http: httpx.AsyncClient, boss: Account, later: Any
) -> None:
    user, box = await sender(http)
    good, _ = domains()
    auto = await create(
        http, user, recipients=[f"s@{good}", f"h@{good}"], from_address=box, sample_size=1
    )
    manual = await create(
        http,
        user,
        recipients=[f"s2@{good}", f"h2@{good}"],
        from_address=box,
        sample_size=1,
        auto_release=False,
    )
    await asyncio.sleep(0.5)  # the job runs, but the hour is not over
    early = (await http.get(f"{CANARIES}/{auto['id']}", headers=user.headers)).json()
    assert early["status"] == "probing", early
    later(61)
    async with asyncio.timeout(WAIT):
        while True:
            state = (await http.get(f"{CANARIES}/{auto['id']}", headers=user.headers)).json()
            if state["status"] != "probing":
                break
            await asyncio.sleep(0.05)
    assert state["status"] == "released", state
    assert roles(state)[f"h@{good}"] == ("held", "released"), state
    assert await arrives(http, boss, f"h@{good}") == ["Launch"]
    # Without auto_release the send waits for a decision, however long.
    await asyncio.sleep(0.5)
    waiting = (await http.get(f"{CANARIES}/{manual['id']}", headers=user.headers)).json()
    assert waiting["status"] == "probing"
    assert await inbox(http, boss, f"h2@{good}") == []


async def test_cancel_stops_the_rest(http: httpx.AsyncClient, boss: Account) -> None:
    user, box = await sender(http)
    good, _ = domains()
    canary = await create(
        http, user, recipients=[f"s@{good}", f"h@{good}"], from_address=box, sample_size=1
    )
    response = await call(http, user, "cancel", canary["id"])
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "cancelled" and body["decided_at"]
    assert roles(body) == {f"s@{good}": ("sample", "sent"), f"h@{good}": ("held", "skipped")}
    for verb in ("decide", "cancel"):
        refused = await call(http, user, verb, canary["id"])
        assert refused.status_code == 409
        assert refused.json()["detail"].endswith("is already cancelled")
    await asyncio.sleep(0.3)
    assert await inbox(http, boss, f"h@{good}") == []


async def test_listing_and_tenancy(http: httpx.AsyncClient) -> None:
    user, box = await sender(http)
    good, _ = domains()
    made = [
        (await create(http, user, recipients=[f"{n}@{good}"], from_address=box))["id"]
        for n in range(3)
    ]
    listed = (await http.get(CANARIES, params={"limit": 2}, headers=user.headers)).json()
    assert listed["total"] == 3 and [c["id"] for c in listed["canaries"]] == made[:0:-1]
    stranger = await new_user(http)
    assert (await http.get(CANARIES, headers=stranger.headers)).json() == {
        "canaries": [],
        "total": 0,
    }
    for path in (f"{CANARIES}/{made[0]}", f"{CANARIES}/{made[0]}/decide"):
        method = "GET" if path.endswith(made[0]) else "POST"
        response = await http.request(method, path, headers=stranger.headers)
        assert response.status_code == 404
    for missing in ("3f9a1c52-0000-4000-8000-000000000000", "not-a-canary"):
        for verb in ("decide", "cancel"):
            assert (await call(http, user, verb, missing)).status_code == 404
        assert (await http.get(f"{CANARIES}/{missing}", headers=user.headers)).status_code == 404
    for limit in (0, 101, "many"):
        response = await http.get(CANARIES, params={"limit": limit}, headers=user.headers)
        assert response.status_code == 422


@pytest.mark.parametrize(
    ("change", "status"),
    [
        ({"recipients": []}, 422),
        ({"recipients": "a@x.test"}, 422),
        ({"recipients": [1]}, 422),
        ({"subject": None}, 422),
        ({"sample_size": 0}, 422),
        ({"sample_size": 51}, 422),
        ({"hold_minutes": 0}, 422),
        ({"hold_minutes": 10081}, 422),
        ({"bounce_threshold": 1.5}, 422),
        ({"body_type": "rtf"}, 422),
        ({"auto_release": [True]}, 422),
        ({"recipients": ["not an address"]}, 400),
        ({"recipients": [f"r{n}@x.test" for n in range(1001)]}, 400),
        ({"reply_to": "not a list"}, 400),
        ({"subject": "Hi\r\nBcc: everyone@x.test"}, 400),
        ({"from_address": "someone-else@example.test"}, 404),
    ],
)
async def test_bad_requests(
    http: httpx.AsyncClient,
    shared_sender: tuple[Account, str],
    change: dict[str, Any],
    status: int,
) -> None:
    user, box = shared_sender
    body = {"recipients": ["a@x.test"], "from_address": box, "subject": "Hi", **change}
    response = await http.post(CANARIES, json=body, headers=user.headers)
    assert response.status_code == status, response.text
    assert response.json()["detail"]
    assert (await http.get(CANARIES, headers=user.headers)).json()["total"] == 0


async def test_needs_the_send_scope_and_the_sender(http: httpx.AsyncClient) -> None:
    user, box = await sender(http)
    body = {"recipients": ["a@x.test"], "from_address": box, "subject": "Hi"}
    assert (await http.post(CANARIES, json=body)).status_code == 401
    reader = (await new_api_key(http, user, scopes=["email:read"]))["key"]
    refused = await http.post(CANARIES, json=body, headers={"X-API-Key": reader})
    assert refused.status_code == 403 and "email:send" in refused.json()["detail"]
    elsewhere = (await new_api_key(http, user, allowed_mailboxes=["other@example.test"]))["key"]
    hidden = await http.post(CANARIES, json=body, headers={"X-API-Key": elsewhere})
    assert hidden.status_code == 404
    allowed = (await new_api_key(http, user, scopes=["email:send"]))["key"]
    ok = await http.post(CANARIES, json=body, headers={"X-API-Key": allowed})
    assert ok.status_code == 201 and ok.json()["status"] == "probing"


async def test_graphql_twins(http: httpx.AsyncClient, boss: Account) -> None:
    user, box = await sender(http)
    good, _ = domains()
    result = """
      __typename
      ... on SendCanary { id status sampleRecipients heldRecipients
                          recipients { email role status } }
      ... on OperationError { code message }"""
    create_mutation = (
        "mutation ($input: CreateSendCanaryInput!) "
        f"{{ createSendCanary(input: $input) {{ {result} }} }}"
    )
    created = await graphql(
        http,
        user,
        create_mutation,
        input={
            "recipients": [f"s@{good}", f"h@{good}"],
            "fromAddress": box,
            "subject": "Launch",
            "bodyType": "HTML",
            "body": "<p>Hi</p>",
            "sampleSize": 1,
        },
    )
    canary = created["data"]["createSendCanary"]
    assert (canary["__typename"], canary["status"], canary["heldRecipients"]) == (
        "SendCanary",
        "PROBING",
        1,
    )
    assert canary["recipients"][0] == {"email": f"s@{good}", "role": "SAMPLE", "status": "SENT"}
    listed = await graphql(http, user, "{ sendCanaries(limit: 5) { total canaries { id } } }")
    assert listed["data"]["sendCanaries"] == {"total": 1, "canaries": [{"id": canary["id"]}]}
    one = await graphql(
        http, user, "query ($id: String!) { sendCanary(id: $id) { status } }", id=canary["id"]
    )
    assert one["data"]["sendCanary"] == {"status": "PROBING"}
    decide = f"mutation ($id: String!) {{ decideSendCanary(id: $id) {{ {result} }} }}"
    cancel = f"mutation ($id: String!) {{ cancelSendCanary(id: $id) {{ {result} }} }}"
    decided = (await graphql(http, user, decide, id=canary["id"]))["data"]["decideSendCanary"]
    assert decided["status"] == "RELEASED"
    assert await arrives(http, boss, f"h@{good}") == ["Launch"]
    conflict = (await graphql(http, user, cancel, id=canary["id"]))["data"]["cancelSendCanary"]
    assert conflict["__typename"] == "OperationError" and conflict["code"] == "CONFLICT"
    missing = (await graphql(http, user, decide, id="nope"))["data"]["decideSendCanary"]
    assert missing["code"] == "NOT_FOUND"
    bad = await graphql(
        http,
        user,
        create_mutation,
        input={"recipients": ["a@x.test"], "fromAddress": box, "subject": "Hi", "sampleSize": 99},
    )
    assert bad["data"]["createSendCanary"]["code"] == "INVALID"
    stranger = await new_user(http)
    hidden = await graphql(
        http, stranger, "query ($id: String!) { sendCanary(id: $id) { id } }", id=canary["id"]
    )
    assert hidden["errors"][0]["extensions"]["code"] == "NOT_FOUND"
