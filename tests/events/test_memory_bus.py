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
    cursor_order,
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


async def test_published_events_get_increasing_cursor_ids() -> None:
    bus = MemoryBus()
    async with bus.subscribe([ALL_EVENTS]) as sub:
        for uid in (1, 2, 3):
            await bus.publish(received("a@example.test", uid))
        got = [await anext(sub) for _ in range(3)]
    orders = [cursor_order(event.id) for event in got]
    assert None not in orders
    assert orders == sorted(orders) and len(set(orders)) == 3  # type: ignore[type-var]


async def test_replay_hands_out_what_followed_an_id() -> None:
    bus = MemoryBus(replay_size=10)
    fresh = await bus.replay(None)
    assert (fresh.events, fresh.gap) == ([], False)
    async with bus.subscribe([ALL_EVENTS]) as sub:
        for uid in (1, 2, 3):
            await bus.publish(received("a@example.test", uid))
        first, second, third = [await anext(sub) for _ in range(3)]
    assert (await bus.replay(fresh.head)).events == [first, second, third]
    after_first = await bus.replay(first.id)
    assert (after_first.events, after_first.gap, after_first.head) == (
        [second, third],
        False,
        third.id,
    )
    assert (await bus.replay(third.id)).events == []


async def test_replay_reports_a_gap_when_the_buffer_lost_events() -> None:
    bus = MemoryBus(replay_size=2)
    async with bus.subscribe([ALL_EVENTS]) as sub:
        for uid in range(1, 6):
            await bus.publish(received("a@example.test", uid))
        ids = [(await anext(sub)).id for _ in range(5)]
    # The buffer holds #4 and #5: after #3 nothing is missing, after #2 #3 is.
    kept = await bus.replay(ids[2])
    assert ([e.uid for e in kept.events], kept.gap) == ([4, 5], False)
    lost = await bus.replay(ids[1])
    assert (lost.events, lost.gap, lost.head) == ([], True, ids[4])
    epoch = ids[0].split("-")[0]
    for unknown in ("garbage", "", "1-1", f"{epoch}-99", "1-2-3", "\uff19-1"):
        assert (await bus.replay(unknown)).gap, unknown  # another process, the future, junk
