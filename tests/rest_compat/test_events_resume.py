"""SSE heartbeats and resuming with Last-Event-ID, over real HTTP against a real node.

This module's node sends a heartbeat every 0.3 s and keeps only the last
:data:`REPLAY` events, so a gap is easy to cause. Mail is sent over SMTP
while no stream is open; a stream reopened with the last id it saw must
hand out exactly what was missed, in order, then go on live.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
import pytest_asyncio

from accounts import admin, new_api_key, new_user
from conftest import node_settings
from live_events import Feed, Received, new_address, smtp_send, sse_stream
from mailcue_server.app import MailcueServer
from mailcue_server.events.bus import cursor_order
from mailcue_server.store import mailboxes

HEARTBEAT = 0.3
REPLAY = 8
RECEIVED = "email.received"


@pytest_asyncio.fixture(scope="module")
async def server(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[MailcueServer]:
    node = MailcueServer(
        node_settings(
            tmp_path_factory.mktemp("resume"),
            sse_heartbeat_seconds=HEARTBEAT,
            event_replay_size=REPLAY,
        )
    )
    await node.start()
    yield node
    await node.stop()


def resume_from(headers: dict[str, str], last_event_id: str) -> dict[str, str]:
    return {**headers, "Last-Event-ID": last_event_id}


async def subjects(feed: Feed, count: int) -> list[str]:
    return [(await feed.next()).details["subject"] for _ in range(count)]


def assert_ordered(events: list[Received]) -> None:
    orders = [cursor_order(event.id) for event in events]
    assert None not in orders
    assert orders == sorted(orders) and len(set(orders)) == len(orders)  # type: ignore[type-var]


async def test_heartbeat_carries_the_server_time_and_the_streams_position(
    server: MailcueServer, http: httpx.AsyncClient
) -> None:
    boss = await admin(http)
    address = new_address("beat")
    async with sse_stream(server, boss.headers, mailbox=address) as feed:
        first = await asyncio.wait_for(feed.heartbeats.get(), HEARTBEAT * 10)
        sent = datetime.fromisoformat(first.details["time"])
        assert sent.tzinfo is not None
        assert abs(datetime.now(UTC) - sent) < timedelta(seconds=5)
        assert cursor_order(first.id) is not None  # resumable even before any event

        await smtp_send(server, address, "between beats")
        received = await feed.expect(RECEIVED, address)
        # Heartbeats after it stand at that event: a reconnect resumes after it.
        while (beat := await asyncio.wait_for(feed.heartbeats.get(), HEARTBEAT * 10)).arrived < (
            received.arrived
        ):
            pass
        assert beat.id == received.id
        second = datetime.fromisoformat(beat.details["time"])
        assert second > sent


async def test_a_reconnect_gets_exactly_the_missed_events_in_order(
    server: MailcueServer, http: httpx.AsyncClient
) -> None:
    boss = await admin(http)
    address, other = new_address("resume"), new_address("resume-other")
    async with sse_stream(server, boss.headers, mailbox=address, types=RECEIVED) as feed:
        await smtp_send(server, address, "seen live")
        seen = await feed.next()
    for subject in ("missed 1", "missed 2"):
        await smtp_send(server, address, subject)
    await smtp_send(server, other, "not watched")  # a filtered-out event in between

    headers = resume_from(boss.headers, seen.id)
    async with sse_stream(server, headers, mailbox=address, types=RECEIVED) as feed:
        replayed = [await feed.next(), await feed.next()]
        assert [e.details["subject"] for e in replayed] == ["missed 1", "missed 2"]
        await smtp_send(server, address, "live again")
        live = await feed.next()  # nothing, no duplicate, came between
        assert live.details["subject"] == "live again"
        assert feed.pending() == []
    assert_ordered([seen, *replayed, live])
    assert {e.mailbox for e in replayed} == {address}


async def test_the_query_parameter_resumes_too_and_the_header_wins(
    server: MailcueServer, http: httpx.AsyncClient
) -> None:
    boss = await admin(http)
    address = new_address("query")
    async with sse_stream(server, boss.headers, mailbox=address, types=RECEIVED) as feed:
        await smtp_send(server, address, "one")
        one = await feed.next()
        await smtp_send(server, address, "two")
        two = await feed.next()
    await smtp_send(server, address, "three")
    params = {"mailbox": address, "types": RECEIVED}
    async with sse_stream(server, boss.headers, last_event_id=one.id, **params) as feed:
        assert await subjects(feed, 2) == ["two", "three"]
    async with sse_stream(
        server, resume_from(boss.headers, two.id), last_event_id=one.id, **params
    ) as feed:
        assert await subjects(feed, 1) == ["three"]
        await smtp_send(server, address, "four")
        assert await subjects(feed, 1) == ["four"]


async def test_replay_shows_only_what_the_key_may_read(
    server: MailcueServer, http: httpx.AsyncClient
) -> None:
    assert server.bus is not None
    user = await new_user(http)
    allowed, excluded = new_address("replay-allowed"), new_address("replay-excluded")
    for address in (allowed, excluded):
        await mailboxes.create_mailbox(address, bus=server.bus, owner_id=user.user["id"])
    key = await new_api_key(http, user, scopes=["events:read"], allowed_mailboxes=[allowed])
    headers = {"X-API-Key": key["key"]}
    async with sse_stream(server, headers, types=RECEIVED) as feed:
        await smtp_send(server, allowed, "before")
        before = await feed.next()
    await smtp_send(server, excluded, "hidden while away")
    await smtp_send(server, new_address("stranger"), "someone else's")
    await smtp_send(server, allowed, "visible while away")
    async with sse_stream(server, resume_from(headers, before.id), types=RECEIVED) as feed:
        got = await feed.next()
        assert (got.mailbox, got.details["subject"]) == (allowed, "visible while away")
        await smtp_send(server, allowed, "live")
        assert (await feed.next()).details["subject"] == "live"  # nothing hidden came first


async def test_an_id_older_than_the_buffer_starts_with_a_gap_reset(
    server: MailcueServer, http: httpx.AsyncClient
) -> None:
    boss = await admin(http)
    address = new_address("gap")
    async with sse_stream(server, boss.headers, mailbox=address) as feed:
        await smtp_send(server, address, "the last one seen")
        seen = await feed.expect(RECEIVED, address)
    for n in range(REPLAY):  # two events each (a new mailbox, a message): past the buffer
        await smtp_send(server, new_address(f"flood{n}"), "flood")
    await smtp_send(server, address, "lost in the gap")

    async with sse_stream(server, resume_from(boss.headers, seen.id), mailbox=address) as feed:
        reset = await feed.next()
        assert reset.type == "stream.reset"
        assert reset.details["reason"] == "gap"
        assert reset.details["last_event_id"] == seen.id
        assert cursor_order(reset.id) > cursor_order(seen.id)  # type: ignore[operator]
        await smtp_send(server, address, "after the reset")
        live = await feed.next()  # the stream goes on live; the lost mail is not replayed
        assert (live.type, live.details["subject"]) == (RECEIVED, "after the reset")
    # Resuming from the reset's id misses nothing since.
    async with sse_stream(server, resume_from(boss.headers, reset.id), mailbox=address) as feed:
        assert (await feed.next()).details["subject"] == "after the reset"


@pytest.mark.parametrize("bad", ["not-an-id", "1-1", "99999999999999-0", "x" * 500, "0-0"])
async def test_an_unknown_or_malformed_id_is_a_gap_not_an_error(
    server: MailcueServer, http: httpx.AsyncClient, bad: str
) -> None:
    boss = await admin(http)
    async with sse_stream(server, resume_from(boss.headers, bad)) as feed:
        reset = await feed.next()
    assert (reset.type, reset.details["reason"]) == ("stream.reset", "gap")


async def test_an_empty_last_event_id_starts_afresh(
    server: MailcueServer, http: httpx.AsyncClient
) -> None:
    boss = await admin(http)
    address = new_address("fresh")
    async with sse_stream(server, resume_from(boss.headers, ""), mailbox=address) as feed:
        await smtp_send(server, address, "fresh")
        assert (await feed.expect(RECEIVED, address)).details["subject"] == "fresh"
        assert all(e.type != "stream.reset" for e in feed.pending())
