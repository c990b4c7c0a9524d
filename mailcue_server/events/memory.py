"""The in-process event bus, and the local fan-out the Redis bus reuses.

:class:`Fanout` keeps the subscribers of one process by channel and hands
each event to their bounded buffers without ever awaiting: a subscriber whose
buffer is full is marked dropped and skipped from then on, so a stalled SSE
client cannot slow SMTP delivery down.

:class:`MemoryBus` numbers what it publishes ``<start ms>-<n>`` and keeps the
last ``replay_size`` events for :meth:`MemoryBus.replay`. An id from before
this process started (another node, or a restart) is a gap: the buffer
never held what followed it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import enum
import time
from collections import deque
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager

from mailcue_server.events.bus import (
    ALL_EVENTS,
    DEFAULT_QUEUE_SIZE,
    DEFAULT_REPLAY_SIZE,
    Event,
    Replay,
    SubscriptionDropped,
    cursor_order,
    format_cursor,
)


class _State(enum.Enum):
    OPEN = "open"
    DROPPED = "dropped"
    CLOSED = "closed"


class Subscriber:
    """One subscription: an async iterator over a bounded buffer of events."""

    def __init__(self, channels: frozenset[str], limit: int) -> None:
        self.channels = channels
        self._limit = limit
        self._buffer: deque[Event] = deque()
        self._wakeup = asyncio.Event()
        self._state = _State.OPEN

    @property
    def dropped(self) -> bool:
        return self._state is _State.DROPPED

    def offer(self, event: Event) -> None:
        """Buffer ``event``, or drop this subscriber if its buffer is full."""
        if self._state is not _State.OPEN:
            return
        if len(self._buffer) >= self._limit:
            self._state = _State.DROPPED
        else:
            self._buffer.append(event)
        self._wakeup.set()

    def drop(self) -> None:
        """Tell the consumer it missed events (for example after a lost connection)."""
        if self._state is _State.OPEN:
            self._state = _State.DROPPED
        self._wakeup.set()

    def end(self) -> None:
        """End the iteration once the buffered events are consumed."""
        if self._state is _State.OPEN:
            self._state = _State.CLOSED
        self._wakeup.set()

    def __aiter__(self) -> Subscriber:
        return self

    async def __anext__(self) -> Event:
        while True:
            if self._buffer:
                return self._buffer.popleft()
            if self._state is _State.DROPPED:
                raise SubscriptionDropped("subscriber fell behind and was dropped")
            if self._state is _State.CLOSED:
                raise StopAsyncIteration
            self._wakeup.clear()
            await self._wakeup.wait()


class Fanout:
    """The subscribers of one process, by channel."""

    def __init__(self, queue_size: int = DEFAULT_QUEUE_SIZE) -> None:
        self.queue_size = queue_size
        self._by_channel: dict[str, set[Subscriber]] = {}

    def add(self, channels: Iterable[str]) -> Subscriber:
        """Register a subscriber; the firehose alone covers every other channel."""
        wanted = frozenset(channels)
        if not wanted:
            raise ValueError("subscribe to at least one channel")
        if ALL_EVENTS in wanted:
            wanted = frozenset({ALL_EVENTS})
        subscriber = Subscriber(wanted, self.queue_size)
        for channel in wanted:
            self._by_channel.setdefault(channel, set()).add(subscriber)
        return subscriber

    def remove(self, subscriber: Subscriber) -> list[str]:
        """Unregister; returns the channels nobody listens to any more."""
        emptied: list[str] = []
        for channel in subscriber.channels:
            listeners = self._by_channel.get(channel)
            if listeners is None:
                continue
            listeners.discard(subscriber)
            if not listeners:
                del self._by_channel[channel]
                emptied.append(channel)
        subscriber.end()
        return emptied

    def deliver(self, channel: str, event: Event) -> None:
        for subscriber in self._by_channel.get(channel, ()):
            subscriber.offer(event)

    def channels(self) -> set[str]:
        return set(self._by_channel)

    def drop_all(self) -> None:
        for listeners in self._by_channel.values():
            for subscriber in listeners:
                subscriber.drop()

    def end_all(self) -> None:
        for listeners in list(self._by_channel.values()):
            for subscriber in listeners:
                subscriber.end()
        self._by_channel.clear()


class MemoryBus:
    """The event bus of a single process (the default ``mailcue serve`` shape).

    Args:
        queue_size: The per-subscriber buffer (see :class:`Fanout`).
        replay_size: How many recent events :meth:`replay` can hand out.
    """

    def __init__(
        self, queue_size: int = DEFAULT_QUEUE_SIZE, *, replay_size: int = DEFAULT_REPLAY_SIZE
    ) -> None:
        self._fanout = Fanout(queue_size)
        self._closed = False
        self._epoch = time.time_ns() // 1_000_000
        self._count = 0
        self._recent: deque[tuple[tuple[int, int], Event]] = deque(maxlen=max(replay_size, 1))
        self._evicted: tuple[int, int] | None = None  # the latest event the buffer let go

    async def publish(self, event: Event) -> None:
        self._check_open()
        # No await from numbering to delivery: ids and delivery order agree.
        self._count += 1
        order = (self._epoch, self._count)
        stamped = dataclasses.replace(event, id=format_cursor(order))
        if len(self._recent) == self._recent.maxlen:
            self._evicted = self._recent[0][0]
        self._recent.append((order, stamped))
        for channel in stamped.channels:
            self._fanout.deliver(channel, stamped)

    async def replay(self, after: str | None) -> Replay:
        head = (self._epoch, self._count)
        if after is None:
            return Replay([], format_cursor(head))
        seen = cursor_order(after)
        if (
            seen is None
            or seen > head
            or seen < (self._epoch, 0)
            or (self._evicted is not None and self._evicted > seen)
        ):
            return Replay([], format_cursor(head), gap=True)
        missed = [event for order, event in self._recent if order > seen]
        return Replay(missed, format_cursor(head))

    async def publish_many(self, events: Sequence[Event]) -> None:
        for event in events:
            await self.publish(event)

    @asynccontextmanager
    async def subscribe(self, channels: Iterable[str]) -> AsyncIterator[AsyncIterator[Event]]:
        self._check_open()
        subscriber = self._fanout.add(channels)
        try:
            yield subscriber
        finally:
            self._fanout.remove(subscriber)

    async def close(self) -> None:
        self._closed = True
        self._fanout.end_all()

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("the event bus is closed")
