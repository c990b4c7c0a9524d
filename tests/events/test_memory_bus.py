"""The in-process bus: routing by channel, bounded queues, closing, the wire form."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from mailcue_server.events.bus import (
    ALL_EVENTS,
    Event,
    EventType,
    SubscriptionDropped,
    channel_for,
)
from mailcue_server.events.memory import MemoryBus


def received(mailbox: str, uid: int) -> Event:
    return Event(EventType.EMAIL_RECEIVED, mailbox, "INBOX", uid, {"subject": f"#{uid}"})


async def test_mailbox_channel_and_firehose() -> None:
    bus = MemoryBus()
    async with (
        bus.subscribe([channel_for("Alice@Example.test")]) as alice,
        bus.subscribe([ALL_EVENTS]) as everything,
    ):
        await bus.publish(received("alice@example.test", 1))
        await bus.publish(received("bob@example.test", 2))
        assert (await anext(alice)).uid == 1
        assert [(await anext(everything)).uid for _ in range(2)] == [1, 2]
        await bus.close()
        assert [event async for event in alice] == []  # bob's event never reached alice


async def test_firehose_plus_mailbox_delivers_once() -> None:
    bus = MemoryBus()
    async with bus.subscribe([ALL_EVENTS, channel_for("alice@example.test")]) as sub:
        await bus.publish(received("alice@example.test", 1))
        await bus.close()
        assert [event.uid async for event in sub] == [1]


async def test_slow_subscriber_is_dropped_without_blocking_the_publisher() -> None:
    bus = MemoryBus(queue_size=10)
    async with (
        bus.subscribe([ALL_EVENTS]) as slow,
        bus.subscribe([ALL_EVENTS]) as fast,
    ):
        seen: list[int] = []

        async def consume() -> None:
            async for event in fast:
                seen.append(event.uid or 0)
                if len(seen) == 50:
                    return

        consumer = asyncio.create_task(consume())
        for uid in range(1, 51):
            await asyncio.wait_for(bus.publish(received("a@example.test", uid)), 0.1)
            await asyncio.sleep(0)  # the fast consumer keeps up, the slow one never reads
        await asyncio.wait_for(consumer, 1)
        assert seen == list(range(1, 51))
        buffered = [(await anext(slow)).uid for _ in range(10)]
        assert buffered == list(range(1, 11))  # what it had before the drop is still delivered
        with pytest.raises(SubscriptionDropped):
            await anext(slow)


async def test_close_ends_waiting_iterators() -> None:
    bus = MemoryBus()
    async with bus.subscribe([ALL_EVENTS]) as sub:
        waiter = asyncio.create_task(anext(sub, None))
        await asyncio.sleep(0)
        await bus.close()
        assert await asyncio.wait_for(waiter, 1) is None
    with pytest.raises(RuntimeError):
        await bus.publish(received("a@example.test", 1))


async def test_leaving_the_context_unsubscribes() -> None:
    bus = MemoryBus()
    async with bus.subscribe([ALL_EVENTS]) as first:
        pass
    await bus.publish(received("a@example.test", 1))
    async with bus.subscribe([ALL_EVENTS]) as second:
        await bus.publish(received("a@example.test", 2))
        await bus.close()
        assert [event.uid async for event in second] == [2]
    assert [event async for event in first] == []


def test_event_json_round_trip() -> None:
    event = Event(
        EventType.EMAIL_FLAGS_CHANGED,
        "zoë@example.test",
        "INBOX",
        7,
        {"flags": ["\\Seen"], "subject": "Grüße"},
        at=datetime(2026, 11, 23, 12, 0, tzinfo=UTC),
    )
    assert Event.from_json(event.to_json()) == event
    with pytest.raises(ValueError):
        Event.from_json(b'{"type": "email.teleported"}')
    with pytest.raises(ValueError):
        Event.from_json(b"not json")


def test_channel_names_come_from_one_function() -> None:
    event = received("Alice@Example.test", 1)
    assert event.channels == (channel_for("alice@example.test"), channel_for(None))
    assert channel_for(None) == ALL_EVENTS
