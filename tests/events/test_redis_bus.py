"""The Redis bus against a real Redis (db 15): two instances stand for two nodes."""

from __future__ import annotations

import asyncio
import dataclasses
import secrets
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
import redis.asyncio as aioredis

from mailcue_server.events.bus import (
    ALL_EVENTS,
    Event,
    EventType,
    SubscriptionDropped,
    channel_for,
    cursor_order,
)
from mailcue_server.events.redis import RedisBus
from services import redis_or_skip

pytestmark = pytest.mark.redis


@pytest_asyncio.fixture
async def redis_url() -> str:
    return await redis_or_skip()


@pytest_asyncio.fixture
async def nodes(redis_url: str) -> AsyncIterator[tuple[RedisBus, RedisBus]]:
    node_a, node_b = RedisBus(redis_url), RedisBus(redis_url)
    try:
        yield node_a, node_b
    finally:
        await node_a.close()
        await node_b.close()


def received(mailbox: str, uid: int) -> Event:
    return Event(EventType.EMAIL_RECEIVED, mailbox, "INBOX", uid, {"subject": f"Grüße #{uid}"})


async def test_an_event_published_on_one_node_reaches_the_other(
    nodes: tuple[RedisBus, RedisBus],
) -> None:
    node_a, node_b = nodes
    async with (
        node_b.subscribe([channel_for("alice@example.test")]) as alice,
        node_b.subscribe([ALL_EVENTS]) as everything,
    ):
        sent = [received("alice@example.test", 1), received("bob@example.test", 2)]
        await node_a.publish_many(sent)
        first = await asyncio.wait_for(anext(alice), 5)
        assert first == dataclasses.replace(sent[0], id=first.id)  # the bus names the id
        got = [await asyncio.wait_for(anext(everything), 5) for _ in range(2)]
        assert got == [dataclasses.replace(e, id=g.id) for e, g in zip(sent, got, strict=True)]
        assert got[0].id == first.id
        orders = [cursor_order(event.id) for event in got]
        assert None not in orders and orders[0] < orders[1]  # type: ignore[operator]


async def test_subscribers_on_the_publishing_node_get_it_too(
    nodes: tuple[RedisBus, RedisBus],
) -> None:
    node_a, _ = nodes
    async with node_a.subscribe([channel_for("alice@example.test")]) as sub:
        await node_a.publish(received("alice@example.test", 3))
        assert (await asyncio.wait_for(anext(sub), 5)).uid == 3


async def test_one_redis_subscription_serves_many_local_subscribers(
    nodes: tuple[RedisBus, RedisBus],
) -> None:
    node_a, node_b = nodes
    channel = channel_for("carol@example.test")
    async with node_b.subscribe([channel]) as first:
        async with node_b.subscribe([channel]) as second:
            await node_a.publish(received("carol@example.test", 1))
            assert (await asyncio.wait_for(anext(first), 5)).uid == 1
            assert (await asyncio.wait_for(anext(second), 5)).uid == 1
        # The second one left; the channel stays subscribed for the first.
        await node_a.publish(received("carol@example.test", 2))
        assert (await asyncio.wait_for(anext(first), 5)).uid == 2


async def test_slow_subscriber_is_dropped(redis_url: str) -> None:
    publisher, listener = RedisBus(redis_url), RedisBus(redis_url, queue_size=5)
    try:
        async with (
            listener.subscribe([channel_for("dan@example.test")]) as slow,
            listener.subscribe([channel_for("dan@example.test")]) as fast,
        ):

            async def consume() -> list[int | None]:
                return [(await anext(fast)).uid for _ in range(20)]

            consumer = asyncio.create_task(consume())
            for n in range(1, 21):
                await asyncio.wait_for(publisher.publish(received("dan@example.test", n)), 1)
                await asyncio.sleep(0.005)  # the fast consumer keeps up; the slow one never reads
            assert await asyncio.wait_for(consumer, 5) == list(range(1, 21))
            assert [(await anext(slow)).uid for _ in range(5)] == [1, 2, 3, 4, 5]
            with pytest.raises(SubscriptionDropped):
                await asyncio.wait_for(anext(slow), 5)
    finally:
        await publisher.close()
        await listener.close()


async def test_garbage_on_the_channel_is_skipped(
    redis_url: str, nodes: tuple[RedisBus, RedisBus]
) -> None:
    _, node_b = nodes
    channel = channel_for("erin@example.test")
    client = aioredis.Redis.from_url(redis_url)
    try:
        async with node_b.subscribe([channel]) as sub:
            await client.publish(channel, b"not an event")
            await client.publish(channel, received("erin@example.test", 9).to_json())
            assert (await asyncio.wait_for(anext(sub), 5)).uid == 9
    finally:
        await client.aclose()


async def test_close_ends_subscriptions(nodes: tuple[RedisBus, RedisBus]) -> None:
    node_a, _ = nodes
    async with node_a.subscribe([ALL_EVENTS]) as sub:
        await node_a.close()
        assert [event async for event in sub] == []


async def test_a_node_replays_what_another_published_with_the_same_ids(
    nodes: tuple[RedisBus, RedisBus],
) -> None:
    node_a, node_b = nodes
    mailbox = f"replay-{secrets.token_hex(4)}@example.test"
    async with node_a.subscribe([channel_for(mailbox)]) as live:
        await node_a.publish_many([received(mailbox, uid) for uid in (1, 2, 3)])
        first, second, third = [await asyncio.wait_for(anext(live), 5) for _ in range(3)]
    replay = await node_b.replay(first.id)
    assert not replay.gap
    mine = [event for event in replay.events if event.mailbox == mailbox]  # Redis is shared
    assert mine == [second, third]
    assert cursor_order(replay.head) >= cursor_order(third.id)  # type: ignore[operator]
    assert [e for e in (await node_b.replay(third.id)).events if e.mailbox == mailbox] == []


async def test_replay_reports_a_gap_once_the_log_was_trimmed(redis_url: str) -> None:
    key = f"mailcue:test:log:{secrets.token_hex(4)}"  # its own log: trimming it harms no one
    small, client = RedisBus(redis_url, replay_size=5, log_key=key), aioredis.from_url(redis_url)
    try:
        before = await small.replay(None)
        assert (before.head, before.gap) == ("0-0", False)
        assert (await small.replay("0-0")).gap is False  # nothing was ever lost
        assert (await small.replay("12-3")).gap  # an id the log never had
        mailbox = "trim@example.test"
        async with small.subscribe([channel_for(mailbox)]) as live:
            # Trimming is approximate (whole stream nodes of 100): publish well past that.
            await small.publish_many([received(mailbox, uid) for uid in range(1, 301)])
            ids = [(await asyncio.wait_for(anext(live), 5)).id for _ in range(300)]
        assert await client.xlen(key) < 300
        lost = await small.replay(ids[0])
        assert (lost.events, lost.gap, lost.head) == ([], True, ids[-1])
        recent = await small.replay(ids[-3])
        assert ([e.uid for e in recent.events], recent.gap) == ([299, 300], False)
        for junk in ("garbage", "1-2-3", f"{ids[-1]}0"):
            assert (await small.replay(junk)).gap, junk
    finally:
        await client.delete(key)
        await client.aclose()
        await small.close()
