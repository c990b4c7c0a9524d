"""The outbound queue's admin API (/api/v1/system/queue and its GraphQL twin), on a real node.

The node runs its delivery worker (``outbound_enabled``); dnsmasq points the
MX of ``far.test`` at an aiosmtpd "remote" server on loopback whose replies
each test scripts. The worker polls only every 300 s and waits an hour
after a deferral, so anything delivered within a test was delivered because
something woke it: an enqueue (as SMTP does) or the retry route.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import pytest_asyncio
from workers.outbound_rig import Remote, remote_smtp

from accounts import Account, admin, graphql, new_api_key, new_user
from conftest import node_settings
from dns_server import dns_server
from mailcue_server.app import MailcueServer
from mailcue_server.store import outbound
from waiting import eventually

QUEUE = "/api/v1/system/queue"
SENDER = "sender@local.test"


def _address(name: str) -> str:
    """A fresh far-away recipient, so each test scripts its own replies."""
    return f"{name}-{secrets.token_hex(3)}@far.test"


def _mail(subject: str, to: str) -> bytes:
    return (
        f"From: {SENDER}\r\nTo: {to}\r\nSubject: {subject}\r\n"
        f"Message-ID: <{secrets.token_hex(6)}@local.test>\r\n\r\n"
        "Hello from the queue.\r\n.A line that starts with a dot.\r\n"
    ).encode()


@pytest_asyncio.fixture(scope="module")
async def remote() -> AsyncIterator[Remote]:
    async with remote_smtp() as far:
        yield far


@pytest_asyncio.fixture(scope="module")
async def server(
    tmp_path_factory: pytest.TempPathFactory, remote: Remote
) -> AsyncIterator[MailcueServer]:
    """This module's node (it replaces conftest's, which runs no delivery worker)."""
    async with dns_server(
        mx=[("far.test", "mx.far.test", 10)], hosts={"mx.far.test": ["127.0.0.1"]}
    ) as resolver:
        node = MailcueServer(
            node_settings(
                tmp_path_factory.mktemp("queue-node"),
                outbound_enabled=True,
                dns_resolver=resolver,
                outbound_smtp_port=remote.port,
                outbound_timeout=5.0,
                outbound_poll_interval=300.0,
                outbound_retry_base=3600.0,
                outbound_concurrency=1,
                hostname="mail.local.test",
            )
        )
        await node.start()
        assert node.services is not None and node.outbound is not None
        try:
            yield node
        finally:
            await node.stop()


@pytest_asyncio.fixture(scope="module")
async def boss(server: MailcueServer) -> Account:
    async with httpx.AsyncClient(base_url=server.http_url, timeout=10) as client:
        return await admin(client)


async def _enqueue(server: MailcueServer, raw: bytes, *to: str, sender: str = SENDER) -> int:
    """Queue like SMTP submission does: commit, then wake this node's worker."""
    queue_id = await outbound.enqueue(raw, sender, list(to))
    assert server.outbound is not None
    server.outbound.wake()
    return queue_id


async def _entry(http: httpx.AsyncClient, boss: Account, queue_id: int) -> dict[str, Any]:
    response = await http.get(f"{QUEUE}/{queue_id}", headers=boss.headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def _settled(
    http: httpx.AsyncClient, boss: Account, queue_id: int, attempts: int = 1
) -> dict[str, Any]:
    """The entry once ``attempts`` attempts are over (deferred or closed)."""
    found: dict[str, Any] = {}

    async def done() -> bool:
        found.update(await _entry(http, boss, queue_id))
        return found["attempts"] >= attempts and not found["delivering"]

    await eventually(done)
    return found


def _at(value: str) -> datetime:
    parsed = datetime.fromisoformat(value)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


async def test_list_shows_a_deferred_message_with_each_recipients_last_answer(
    http: httpx.AsyncClient, boss: Account, server: MailcueServer, remote: Remote
) -> None:
    bob, carol = _address("bob"), _address("carol")
    remote.rcpt_replies[bob] = ["451 4.2.1 Mailbox busy, try later"]
    raw = _mail("deferred", f"{bob}, {carol}")
    queue_id = await _enqueue(server, raw, bob, carol)
    await _settled(http, boss, queue_id)

    listed = await http.get(QUEUE, headers=boss.headers, params={"state": "queued"})
    assert listed.status_code == 200, listed.text
    page = listed.json()
    [entry] = [e for e in page["entries"] if e["id"] == queue_id]
    assert (entry["sender"], entry["state"], entry["attempts"]) == (SENDER, "queued", 1)
    assert entry["size"] == len(raw) and entry["delivering"] is False
    # One hour after the deferral (outbound_retry_base), not due before.
    assert _at(entry["next_attempt_at"]) > datetime.now(UTC) + timedelta(minutes=50)
    assert "Mailbox busy" in entry["last_error"]
    by_address = {r["address"]: r for r in entry["recipients"]}
    assert set(by_address) == {bob, carol}
    deferred, delivered = by_address[bob], by_address[carol]
    assert (deferred["state"], deferred["smtp_code"], deferred["enhanced_status"]) == (
        "pending",
        451,
        "4.2.1",
    )
    assert "Mailbox busy" in deferred["diagnostic"]
    assert deferred["remote_host"] == "mx.far.test" and deferred["attempts"] == 1
    assert (delivered["state"], delivered["smtp_code"]) == ("delivered", 250)
    assert page["total"] >= 1 and all(e["state"] == "queued" for e in page["entries"])

    # The detail route says the same; the raw route gives the exact bytes enqueued.
    assert await _entry(http, boss, queue_id) == entry
    raw_response = await http.get(f"{QUEUE}/{queue_id}/raw", headers=boss.headers)
    assert raw_response.status_code == 200
    assert raw_response.headers["content-type"] == "message/rfc822"
    assert f"queued-{queue_id}.eml" in raw_response.headers["content-disposition"]
    assert raw_response.content == raw


async def test_the_list_is_newest_first_and_paged(
    http: httpx.AsyncClient, boss: Account, server: MailcueServer
) -> None:
    older = await outbound.enqueue(_mail("older", "x@far.test"), SENDER, [_address("x")])
    newer = await outbound.enqueue(_mail("newer", "y@far.test"), SENDER, [_address("y")])
    first = (await http.get(QUEUE, headers=boss.headers, params={"page_size": 1})).json()
    assert [e["id"] for e in first["entries"]] == [newer]
    assert (first["page"], first["page_size"], first["has_more"]) == (1, 1, True)
    second = await http.get(QUEUE, headers=boss.headers, params={"page": 2, "page_size": 1})
    assert [e["id"] for e in second.json()["entries"]] == [older]
    assert second.json()["total"] == first["total"]
    assert server.outbound is not None
    server.outbound.wake()  # let them go, so later tests start from a quiet queue
    await _settled(http, boss, newer)
    await _settled(http, boss, older)


async def test_retry_now_delivers_a_deferred_message_at_once(
    http: httpx.AsyncClient, boss: Account, server: MailcueServer, remote: Remote
) -> None:
    bob = _address("bob")
    remote.rcpt_replies[bob] = ["452 4.2.2 Mailbox full"]
    raw = _mail("retry me", bob)
    queue_id = await _enqueue(server, raw, bob)
    assert (await _settled(http, boss, queue_id))["state"] == "queued"
    assert not [d for d in remote.received if d.rcpt_tos == [bob]]

    retried = await http.post(f"{QUEUE}/{queue_id}/retry", headers=boss.headers)
    assert retried.status_code == 200, retried.text
    assert retried.json()["state"] == "queued"
    assert _at(retried.json()["next_attempt_at"]) <= datetime.now(UTC)
    entry = await _settled(http, boss, queue_id, attempts=2)
    assert entry["state"] == "delivered" and entry["next_attempt_at"] is None
    assert entry["recipients"][0]["smtp_code"] == 250
    [delivery] = [d for d in remote.received if d.rcpt_tos == [bob]]
    assert (delivery.mail_from, delivery.content) == (SENDER, raw)

    again = await http.post(f"{QUEUE}/{queue_id}/retry", headers=boss.headers)
    assert again.status_code == 409
    assert again.json()["detail"] == (
        f"Queued message {queue_id} was already delivered: there is nothing to retry"
    )


async def test_a_deleted_message_is_never_delivered(
    http: httpx.AsyncClient, boss: Account, server: MailcueServer, remote: Remote
) -> None:
    """One delivery at a time (``outbound_concurrency=1``): while a held one is under way,
    a due message waits; deleting it then means it is never sent, while one queued after
    it is."""
    held_to, doomed_to, later_to = _address("held"), _address("doomed"), _address("later")
    remote.data_gate = asyncio.Event()
    try:
        held = await _enqueue(server, _mail("held", held_to), held_to)
        await eventually(lambda: _delivering(http, boss, held))
        doomed_raw = _mail("doomed", doomed_to)
        doomed = await _enqueue(server, doomed_raw, doomed_to)

        # The held one is being sent: it can neither be deleted nor retried now.
        busy = await http.delete(f"{QUEUE}/{held}", headers=boss.headers)
        assert busy.status_code == 409
        assert "being delivered right now" in busy.json()["detail"]
        assert (await http.post(f"{QUEUE}/{held}/retry", headers=boss.headers)).status_code == 409

        deleted = await http.delete(f"{QUEUE}/{doomed}", headers=boss.headers)
        assert deleted.status_code == 204, deleted.text
        later = await _enqueue(server, _mail("later", later_to), later_to)
    finally:
        assert remote.data_gate is not None
        remote.data_gate.set()
        remote.data_gate = None

    # The worker takes due mail oldest first: "doomed" would have gone before "later".
    assert (await _settled(http, boss, later))["state"] == "delivered"
    assert (await _entry(http, boss, held))["state"] == "delivered"
    assert [d.rcpt_tos for d in remote.received if d.rcpt_tos[0] in (doomed_to, later_to)] == [
        [later_to]
    ]
    assert all(d.content != doomed_raw for d in remote.received)
    for method, path in (
        ("GET", f"{QUEUE}/{doomed}"),
        ("GET", f"{QUEUE}/{doomed}/raw"),
        ("POST", f"{QUEUE}/{doomed}/retry"),
        ("DELETE", f"{QUEUE}/{doomed}"),
    ):
        gone = await http.request(method, path, headers=boss.headers)
        assert gone.status_code == 404, (method, path)
        assert gone.json()["detail"] == f"Queued message {doomed} not found"


async def _delivering(http: httpx.AsyncClient, boss: Account, queue_id: int) -> bool:
    return bool((await _entry(http, boss, queue_id))["delivering"])


async def test_purge_removes_closed_messages_only(
    http: httpx.AsyncClient, boss: Account, server: MailcueServer, remote: Remote
) -> None:
    ok, refused, busy = _address("ok"), _address("refused"), _address("busy")
    remote.rcpt_replies[refused] = ["550 5.1.1 No such user"]
    remote.rcpt_replies[busy] = ["451 4.3.0 Try again later"]
    delivered = await _enqueue(server, _mail("ok", ok), ok)
    # The null sender: its failure is not bounced (which would queue a new message).
    failed = await _enqueue(server, _mail("refused", refused), refused, sender="<>")
    waiting = await _enqueue(server, _mail("busy", busy), busy)
    states = {
        queue_id: (await _settled(http, boss, queue_id))["state"]
        for queue_id in (delivered, failed, waiting)
    }
    assert states == {delivered: "delivered", failed: "failed", waiting: "queued"}

    purged = await http.post(f"{QUEUE}/purge", headers=boss.headers)
    assert purged.status_code == 200, purged.text
    assert purged.json()["purged"] >= 2
    for gone in (delivered, failed):
        assert (await http.get(f"{QUEUE}/{gone}", headers=boss.headers)).status_code == 404
    assert (await _entry(http, boss, waiting))["state"] == "queued"
    remaining = (await http.get(QUEUE, headers=boss.headers, params={"page_size": 200})).json()
    assert {e["state"] for e in remaining["entries"]} == {"queued"}
    again = await http.post(f"{QUEUE}/purge", headers=boss.headers)
    assert again.json() == {"purged": 0}


async def test_no_token_is_401_and_a_regular_user_is_403(
    http: httpx.AsyncClient, boss: Account, server: MailcueServer
) -> None:
    queue_id = await outbound.enqueue(_mail("private", "z@far.test"), SENDER, [_address("z")])
    user = await new_user(http)
    routes = (
        ("GET", QUEUE),
        ("GET", f"{QUEUE}/{queue_id}"),
        ("GET", f"{QUEUE}/{queue_id}/raw"),
        ("POST", f"{QUEUE}/{queue_id}/retry"),
        ("DELETE", f"{QUEUE}/{queue_id}"),
        ("POST", f"{QUEUE}/purge"),
    )
    for method, path in routes:
        anonymous = await http.request(method, path)
        assert anonymous.status_code == 401, (method, path)
        assert anonymous.headers["www-authenticate"] == "Bearer"
        regular = await http.request(method, path, headers=user.headers)
        assert regular.status_code == 403, (method, path)
        assert regular.json()["detail"] == "Administrator privileges required"
    # Nothing the refused calls asked for happened.
    assert (await _entry(http, boss, queue_id))["id"] == queue_id


async def test_api_keys_need_the_system_scopes(
    http: httpx.AsyncClient, boss: Account, server: MailcueServer
) -> None:
    queue_id = await outbound.enqueue(_mail("keyed", "k@far.test"), SENDER, [_address("k")])
    reader = {"X-API-Key": (await new_api_key(http, boss, scopes=["system:read"]))["key"]}
    stranger = {"X-API-Key": (await new_api_key(http, boss, scopes=["email:read"]))["key"]}
    assert (await http.get(QUEUE, headers=reader)).status_code == 200
    assert (await http.get(f"{QUEUE}/{queue_id}/raw", headers=reader)).status_code == 200
    refused = await http.get(QUEUE, headers=stranger)
    assert refused.status_code == 403
    assert "system:read" in refused.json()["detail"]
    for method, path in (("DELETE", f"{QUEUE}/{queue_id}"), ("POST", f"{QUEUE}/purge")):
        write = await http.request(method, path, headers=reader)
        assert write.status_code == 403 and "system:write" in write.json()["detail"]
    assert (await _entry(http, boss, queue_id))["id"] == queue_id


@pytest.mark.parametrize(
    ("params", "status", "detail"),
    [
        ({"state": "lost"}, 400, "state must be one of: queued, delivered, failed, partial"),
        ({"page": 0}, 400, "page starts at 1"),
        ({"page_size": 201}, 400, "page_size must be between 1 and 200"),
        ({"page_size": "many"}, 422, None),
    ],
)
async def test_bad_list_parameters_are_4xx(
    http: httpx.AsyncClient,
    boss: Account,
    params: dict[str, Any],
    status: int,
    detail: str | None,
) -> None:
    response = await http.get(QUEUE, headers=boss.headers, params=params)
    assert response.status_code == status, response.text
    if detail is not None:
        assert response.json()["detail"] == detail


@pytest.mark.parametrize("bad", ["999999999", "0", "abc", str(2**64)])
async def test_unknown_or_malformed_ids(http: httpx.AsyncClient, boss: Account, bad: str) -> None:
    expected = 404 if bad == "999999999" else 422
    for method, suffix in (("GET", ""), ("GET", "/raw"), ("POST", "/retry"), ("DELETE", "")):
        response = await http.request(method, f"{QUEUE}/{bad}{suffix}", headers=boss.headers)
        assert response.status_code == expected, (method, suffix, response.text)


GQL_LIST = """
query ($state: OutboundQueueState) {
  outboundQueue(state: $state, pageSize: 200) {
    total hasMore
    entries { id sender state attempts delivering nextAttemptAt
              recipients { address state smtpCode enhancedStatus diagnostic } }
  }
}"""
GQL_RETRY = """
mutation ($id: Int!) {
  retryOutboundQueueEntry(id: $id) {
    __typename
    ... on OutboundQueueEntry { id state }
    ... on OperationError { code message }
  }
}"""


async def test_graphql_twin_lists_retries_and_refuses(
    http: httpx.AsyncClient, boss: Account, server: MailcueServer, remote: Remote
) -> None:
    dora = _address("dora")
    remote.rcpt_replies[dora] = ["421 4.7.0 Too many connections"]
    raw = _mail("graphql", dora)
    queue_id = await _enqueue(server, raw, dora)
    await _settled(http, boss, queue_id)

    listed = (await graphql(http, boss, GQL_LIST, state="QUEUED"))["data"]["outboundQueue"]
    [entry] = [e for e in listed["entries"] if e["id"] == queue_id]
    assert (entry["sender"], entry["state"], entry["attempts"]) == (SENDER, "QUEUED", 1)
    [recipient] = entry["recipients"]
    assert (recipient["address"], recipient["state"], recipient["smtpCode"]) == (
        dora,
        "PENDING",
        421,
    )
    assert recipient["enhancedStatus"] == "4.7.0"

    retried = (await graphql(http, boss, GQL_RETRY, id=queue_id))["data"][
        "retryOutboundQueueEntry"
    ]
    assert retried == {"__typename": "OutboundQueueEntry", "id": queue_id, "state": "QUEUED"}
    assert (await _settled(http, boss, queue_id, attempts=2))["state"] == "delivered"
    assert [d.content for d in remote.received if d.rcpt_tos == [dora]] == [raw]

    closed = (await graphql(http, boss, GQL_RETRY, id=queue_id))["data"]["retryOutboundQueueEntry"]
    assert (closed["__typename"], closed["code"]) == ("OperationError", "CONFLICT")
    unknown = await graphql(http, boss, "query { outboundQueueEntry(id: 999999999) { id } }")
    assert unknown["errors"][0]["extensions"]["code"] == "NOT_FOUND"
    raw_query = "query ($id: Int!) { outboundQueueEntryRaw(id: $id) { contentBase64 size } }"
    download = (await graphql(http, boss, raw_query, id=queue_id))["data"]["outboundQueueEntryRaw"]
    assert download["size"] == len(raw)

    user = await new_user(http)
    refused = await graphql(http, user, GQL_LIST)
    assert refused["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    as_user = (await graphql(http, user, GQL_RETRY, id=queue_id))["data"][
        "retryOutboundQueueEntry"
    ]
    assert (as_user["__typename"], as_user["code"]) == ("OperationError", "FORBIDDEN")
