"""GraphQL subscriptions over a real WebSocket (graphql-transport-ws): same rules as SSE."""

from __future__ import annotations

import asyncio
import time

import httpx

from accounts import admin, new_api_key, new_user
from live_events import (
    LATENCY,
    every_event_type,
    graphql_subscription,
    new_address,
    rest_event_types,
    smtp_send,
    until_live,
)
from mailcue_server.app import MailcueServer
from mailcue_server.events.bus import DEFAULT_QUEUE_SIZE, Event, EventType
from mailcue_server.store import mailboxes

EMAIL_RECEIVED = """
subscription ($mailbox: String!) {
  emailReceived(mailbox: $mailbox) { id type mailbox folder uid at data }
}"""


async def test_every_event_type_arrives_within_a_second(
    server: MailcueServer, http: httpx.AsyncClient
) -> None:
    boss = await admin(http)
    async with graphql_subscription(server, boss.headers) as sub:
        await until_live(server, sub.feed, new_address("probe"))
        await every_event_type(server, sub.feed)
        await rest_event_types(http, boss.headers, sub.feed)
        assert sub.errors == []


async def test_email_received_of_one_mailbox(
    server: MailcueServer, http: httpx.AsyncClient
) -> None:
    boss = await admin(http)
    key = (await new_api_key(http, boss, scopes=["events:read"]))["key"]
    address = new_address("one")
    async with graphql_subscription(
        server, {"X-API-Key": key}, EMAIL_RECEIVED, mailbox=address
    ) as sub:
        await until_live(server, sub.feed, address, EventType.EMAIL_RECEIVED)
        started = time.monotonic()
        await smtp_send(server, new_address("elsewhere"), "elsewhere")
        await smtp_send(server, address, "here")
        got = await sub.feed.expect("email.received")
        assert got.mailbox == address and got.details["subject"] == "here"
        assert got.arrived - started < LATENCY
        assert sub.feed.pending() == [] and sub.errors == []


async def test_without_credentials_is_unauthenticated(server: MailcueServer) -> None:
    async with graphql_subscription(server, {}) as sub:
        assert await asyncio.wait_for(sub.feed.ended, 10) == "complete"
        assert [e["extensions"]["code"] for e in sub.errors] == ["UNAUTHENTICATED"]


async def test_key_without_events_scope_is_forbidden(
    server: MailcueServer, http: httpx.AsyncClient
) -> None:
    owner = await new_user(http)
    key = (await new_api_key(http, owner, scopes=["email:read"]))["key"]
    async with graphql_subscription(server, {"X-API-Key": key}) as sub:
        assert await asyncio.wait_for(sub.feed.ended, 10) == "complete"
        assert [e["extensions"]["code"] for e in sub.errors] == ["FORBIDDEN"]
        assert "events:read" in sub.errors[0]["message"]


async def test_revoked_key_is_unauthenticated(
    server: MailcueServer, http: httpx.AsyncClient
) -> None:
    owner = await new_user(http)
    created = await new_api_key(http, owner, scopes=["events:read"])
    await http.delete(f"/api/v1/auth/api-keys/{created['id']}", headers=owner.headers)
    async with graphql_subscription(server, {"X-API-Key": created["key"]}) as sub:
        assert await asyncio.wait_for(sub.feed.ended, 10) == "complete"
        assert [e["extensions"]["code"] for e in sub.errors] == ["UNAUTHENTICATED"]


async def test_unknown_type_is_invalid(server: MailcueServer, http: httpx.AsyncClient) -> None:
    boss = await admin(http)
    async with graphql_subscription(server, boss.headers, types=["email.exploded"]) as sub:
        assert await asyncio.wait_for(sub.feed.ended, 10) == "complete"
        assert [e["extensions"]["code"] for e in sub.errors] == ["INVALID"]


async def test_a_user_sees_only_their_own_mailboxes(
    server: MailcueServer, http: httpx.AsyncClient
) -> None:
    assert server.bus is not None
    user, stranger = await new_user(http), await new_user(http)
    mine, theirs = new_address("mine"), new_address("theirs")
    await mailboxes.create_mailbox(mine, bus=server.bus, owner_id=user.user["id"])
    await mailboxes.create_mailbox(theirs, bus=server.bus, owner_id=stranger.user["id"])
    async with graphql_subscription(server, user.headers) as sub:
        await until_live(server, sub.feed, mine)
        # In this order: "mine" arriving first means the others were withheld.
        await smtp_send(server, theirs, "someone else's")
        await smtp_send(server, new_address("unowned"), "nobody's")
        started = time.monotonic()
        await smtp_send(server, mine, "my own")
        got = await sub.feed.next()
        assert (got.type, got.mailbox) == ("email.received", mine)
        assert got.arrived - started < LATENCY
        assert sub.feed.pending() == [] and sub.errors == []


async def test_slow_subscriber_gets_stream_reset(
    server: MailcueServer, http: httpx.AsyncClient
) -> None:
    """A burst larger than the subscriber's buffer: what was buffered, then STREAM_RESET."""
    assert server.bus is not None
    boss = await admin(http)
    address = new_address("flood")
    async with graphql_subscription(server, boss.headers, mailbox=address) as sub:
        await until_live(server, sub.feed, address)
        await server.bus.publish_many(
            [Event(EventType.FOLDER_CHANGED, address, "x", data={"n": n}) for n in range(5000)]
        )
        assert await asyncio.wait_for(sub.feed.ended, 10) == "complete"
        assert [e["extensions"]["code"] for e in sub.errors] == ["STREAM_RESET"]
        assert [got.details["n"] for got in sub.feed.pending()] == list(range(DEFAULT_QUEUE_SIZE))


async def test_browser_credentials_in_connection_init(
    server: MailcueServer, http: httpx.AsyncClient
) -> None:
    """Browsers cannot set WebSocket headers: the key travels in the connection_init payload."""
    boss = await admin(http)
    address = new_address("browser")
    async with graphql_subscription(
        server, {}, init_payload={"Authorization": f"Bearer {boss.access_token}"}
    ) as sub:
        live: asyncio.Future[object] = asyncio.ensure_future(until_live(server, sub.feed, address))
        ended: asyncio.Future[object] = asyncio.ensure_future(sub.feed.ended)
        await asyncio.wait([live, ended], return_when=asyncio.FIRST_COMPLETED)
        live.cancel()
        assert sub.errors == [] and not sub.feed.ended.done()
