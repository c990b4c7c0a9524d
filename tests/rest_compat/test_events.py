"""GET /api/v1/events/stream: live events over SSE, as a client and as an attacker sees them."""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import time

import httpx
from mailcue import AsyncMailcue
from mailcue.types import Event as SdkEvent

from accounts import admin, new_api_key, new_user
from live_events import (
    LATENCY,
    every_event_type,
    new_address,
    parse_sse_block,
    rest_event_types,
    smtp_send,
    sse_stream,
)
from mailcue_server.app import MailcueServer
from mailcue_server.events.bus import DEFAULT_QUEUE_SIZE, Event, EventType
from mailcue_server.rest_compat.events import MAX_STREAM_SECONDS, event_payload
from mailcue_server.schema.types.events import MailEvent
from mailcue_server.store import mailboxes, messages

STREAM = "/api/v1/events/stream"


async def test_every_event_type_arrives_within_a_second(
    server: MailcueServer, http: httpx.AsyncClient
) -> None:
    boss = await admin(http)
    async with sse_stream(server, boss.headers) as feed:
        await every_event_type(server, feed)
        await rest_event_types(http, boss.headers, feed)
        assert feed.comments[0] == "subscribed"


async def test_filters_by_mailbox_and_type(server: MailcueServer, http: httpx.AsyncClient) -> None:
    boss = await admin(http)
    watched, other = new_address("watched"), new_address("other")
    async with sse_stream(
        server, boss.headers, mailbox=watched.upper(), types="email.received, email.deleted"
    ) as feed:
        await smtp_send(server, other, "not watched")
        await smtp_send(server, watched, "watched")
        got = await feed.next()
        assert (got.type, got.mailbox, got.details["subject"]) == (
            "email.received",
            watched,
            "watched",
        )
        # mailbox.created of the watched address was filtered out by type.
        assert feed.pending() == []


async def test_without_credentials_is_401(http: httpx.AsyncClient) -> None:
    response = await http.get(STREAM)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"


async def test_key_without_events_scope_is_403(http: httpx.AsyncClient) -> None:
    owner = await new_user(http)
    key = (await new_api_key(http, owner, scopes=["email:read"]))["key"]
    response = await http.get(STREAM, headers={"X-API-Key": key})
    assert response.status_code == 403
    assert "events:read" in response.json()["detail"]


async def test_revoked_key_cannot_open_a_stream(http: httpx.AsyncClient) -> None:
    owner = await new_user(http)
    created = await new_api_key(http, owner, scopes=["events:read"])
    revoked = await http.delete(f"/api/v1/auth/api-keys/{created['id']}", headers=owner.headers)
    assert revoked.status_code == 204
    response = await http.get(STREAM, headers={"X-API-Key": created["key"]})
    assert response.status_code == 401


async def test_unknown_event_type_is_400(http: httpx.AsyncClient) -> None:
    boss = await admin(http)
    response = await http.get(STREAM, headers=boss.headers, params={"types": "email.exploded"})
    assert response.status_code == 400
    assert "email.exploded" in response.json()["detail"]


async def test_a_user_sees_only_events_of_their_own_mailboxes(
    server: MailcueServer, http: httpx.AsyncClient
) -> None:
    assert server.bus is not None
    user = await new_user(http)
    mine, theirs = new_address("mine"), new_address("theirs")
    await mailboxes.create_mailbox(mine, bus=server.bus, owner_id=user.user["id"])
    stranger = await new_user(http)
    await mailboxes.create_mailbox(theirs, bus=server.bus, owner_id=stranger.user["id"])
    async with sse_stream(server, user.headers) as feed:
        # Published in this order, so "mine" arriving first means "theirs" was withheld.
        await smtp_send(server, theirs, "someone else's")
        await smtp_send(server, new_address("unowned"), "nobody's")
        await smtp_send(server, mine, "my own")
        got = await feed.next()
        assert (got.type, got.mailbox) == ("email.received", mine)
        assert feed.pending() == []


async def test_an_allow_listed_key_sees_only_those_mailboxes(
    server: MailcueServer, http: httpx.AsyncClient
) -> None:
    assert server.bus is not None
    user = await new_user(http)
    allowed, excluded = new_address("allowed"), new_address("excluded")
    for address in (allowed, excluded):
        await mailboxes.create_mailbox(address, bus=server.bus, owner_id=user.user["id"])
    key = await new_api_key(http, user, scopes=["events:read"], allowed_mailboxes=[allowed])
    async with sse_stream(server, {"X-API-Key": key["key"]}) as feed:
        await smtp_send(server, excluded, "hidden")
        await smtp_send(server, allowed, "visible")
        got = await feed.next()
        assert (got.type, got.mailbox) == ("email.received", allowed)
        assert feed.pending() == []


async def test_owner_sees_their_mailbox_deleted(
    server: MailcueServer, http: httpx.AsyncClient
) -> None:
    """The mailbox is gone when the event is checked; having seen it is what counts."""
    assert server.bus is not None
    user = await new_user(http)
    address = new_address("doomed")
    await mailboxes.create_mailbox(address, bus=server.bus, owner_id=user.user["id"])
    async with sse_stream(server, user.headers) as feed:
        await messages.delete_mailbox(address, bus=server.bus)
        got = await feed.expect("mailbox.deleted", address)
        assert got.folder is None


async def test_slow_reader_gets_stream_reset_then_the_end(
    server: MailcueServer, http: httpx.AsyncClient
) -> None:
    """Fill a subscriber's buffer without reading: the bus drops it, the stream says so."""
    assert server.bus is not None
    boss = await admin(http)
    address = new_address("flood")
    async with (
        httpx.AsyncClient(
            base_url=server.http_url, timeout=httpx.Timeout(10, read=None)
        ) as client,
        client.stream(
            "GET", STREAM, headers=boss.headers, params={"mailbox": address}
        ) as response,
    ):
        lines = response.aiter_lines()
        assert await anext(lines) == ": subscribed"
        # One burst, never yielding to the loop: more than any buffer holds.
        await server.bus.publish_many(
            [Event(EventType.FOLDER_CHANGED, address, "x", data={"n": n}) for n in range(5000)]
        )
        blocks: list[list[str]] = [[]]
        async with asyncio.timeout(10):
            async for line in lines:
                if line:
                    blocks[-1].append(line)
                else:
                    blocks.append([])
        parsed = [parse_sse_block(block) for block in blocks if block]
        assert parsed[-1].event == "stream.reset"
        assert json.loads(parsed[-1].data[0])["reason"] == "too_slow"
        assert all(block.event == "folder.changed" for block in parsed[:-1])
        assert len(parsed) == DEFAULT_QUEUE_SIZE + 1  # what was buffered, then the reset
        # The reset stands where the reader got to: resuming from it replays the rest.
        assert parsed[-1].id == parsed[-2].id
        replay = await server.bus.replay(parsed[-1].id)
        assert not replay.gap and len(replay.events) == 5000 - DEFAULT_QUEUE_SIZE


def test_payload_envelope_wins_over_details() -> None:
    event = Event(EventType.MAILBOX_CREATED, "a@b.test", data={"id": "mailbox-id", "x": 1})
    payload = event_payload(MailEvent.from_event(event))
    assert payload["id"] == event.id and payload["x"] == 1
    assert payload["type"] == "mailbox.created" and payload["at"] == event.at.isoformat()
    assert MAX_STREAM_SECONDS >= 60


async def test_sdk_async_client_receives_email_received(
    server: MailcueServer, http: httpx.AsyncClient
) -> None:
    boss = await admin(http)
    key = (await new_api_key(http, boss, scopes=["events:read"]))["key"]
    address = new_address("sdk")
    got: asyncio.Queue[SdkEvent] = asyncio.Queue()

    async def consume() -> None:
        async with AsyncMailcue(api_key=key, base_url=server.http_url, max_retries=0) as client:
            async for event in client.events:
                got.put_nowait(event)

    consumer = asyncio.create_task(consume())
    try:
        await until_live_sdk(server, got, address)
        started = time.monotonic()
        await smtp_send(server, address, "to the sdk")
        async with asyncio.timeout(10):
            while (event := await got.get()).event_type != "email.received":
                pass
        assert time.monotonic() - started < LATENCY
        assert event.data["mailbox"] == address and event.data["subject"] == "to the sdk"
        assert event.id == event.data["id"] and event.data["uid"] == 1
    finally:
        consumer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await consumer


async def until_live_sdk(
    server: MailcueServer, got: asyncio.Queue[SdkEvent], mailbox: str
) -> None:
    """The SDK hides comments, so probe until one of our events comes through."""
    assert server.bus is not None
    async with asyncio.timeout(10):
        while True:
            token = secrets.token_hex(8)  # the bus gives the event its own id
            await server.bus.publish(
                Event(EventType.FOLDER_CHANGED, mailbox, "probe", data={"p": token})
            )
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(0.2):
                    while (await got.get()).data.get("p") != token:
                        pass
                    return
