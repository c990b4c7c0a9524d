"""The Redis bus against a real Redis (db 15): two instances stand for two nodes."""

from __future__ import annotations

import asyncio
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
        assert await asyncio.wait_for(anext(alice), 5) == sent[0]
        assert [await asyncio.wait_for(anext(everything), 5) for _ in range(2)] == sent


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
