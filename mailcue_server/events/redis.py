"""The event bus over Redis pub/sub, for several nodes sharing one Redis server.

Each node keeps one pub/sub connection. It subscribes at Redis to the
channels its local subscribers want and fans incoming messages out to them
through :class:`~mailcue_server.events.memory.Fanout`, so a thousand SSE
clients cost one Redis connection, not a thousand. Payloads are
:meth:`Event.to_json`.

Redis pub/sub is fire and forget: while the connection is down, events are
lost. So when the reader loses the connection it drops every local
subscriber (:class:`SubscriptionDropped`), and they resynchronise and
subscribe again instead of silently missing mail.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from mailcue_server.events.bus import DEFAULT_QUEUE_SIZE, Event
from mailcue_server.events.memory import Fanout

log = logging.getLogger(__name__)

SUBSCRIBE_TIMEOUT = 5.0
RETRY_DELAY = 1.0


class RedisBus:
    """An :class:`~mailcue_server.events.bus.EventBus` on Redis pub/sub.

    Args:
        url: A ``redis://`` (or ``rediss://``) URL.
        queue_size: The per-subscriber buffer (see :class:`Fanout`).
    """

    def __init__(self, url: str, *, queue_size: int = DEFAULT_QUEUE_SIZE) -> None:
        self._client: aioredis.Redis = aioredis.Redis.from_url(url)
        self._pubsub = self._client.pubsub()
        self._fanout = Fanout(queue_size)
        # Channel -> resolved once Redis confirmed the SUBSCRIBE.
        self._confirmed: dict[str, asyncio.Future[None]] = {}
        self._reader: asyncio.Task[None] | None = None
        self._closed = False

    async def ping(self) -> None:
        """One round trip, so a Redis that does not answer fails start-up at once."""
        await self._client.ping()

    async def publish(self, event: Event) -> None:
        await self.publish_many([event])

    async def publish_many(self, events: Sequence[Event]) -> None:
        self._check_open()
        if not events:
            return
        async with self._client.pipeline(transaction=False) as pipe:
            for event in events:
                payload = event.to_json()
                for channel in event.channels:
                    pipe.publish(channel, payload)
            await pipe.execute()

    @asynccontextmanager
    async def subscribe(self, channels: Iterable[str]) -> AsyncIterator[AsyncIterator[Event]]:
        self._check_open()
        subscriber = self._fanout.add(channels)
        try:
            await self._listen_at_redis(subscriber.channels)
            yield subscriber
        finally:
            emptied = self._fanout.remove(subscriber)
            await self._unlisten_at_redis(emptied)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._fanout.end_all()
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        await self._pubsub.aclose()
        await self._client.aclose()

    async def _listen_at_redis(self, channels: Iterable[str]) -> None:
        """SUBSCRIBE where needed and wait for Redis to confirm, so no later event is missed."""
        loop = asyncio.get_running_loop()
        new = [channel for channel in channels if channel not in self._confirmed]
        for channel in new:
            self._confirmed[channel] = loop.create_future()
        waiting = [self._confirmed[channel] for channel in channels]
        if new:
            await self._pubsub.subscribe(*new)
        if self._reader is None:
            self._reader = asyncio.create_task(self._read(), name="redis-bus-reader")
        async with asyncio.timeout(SUBSCRIBE_TIMEOUT):
            await asyncio.gather(*(asyncio.shield(future) for future in waiting))

    async def _unlisten_at_redis(self, channels: list[str]) -> None:
        if not channels or self._closed:
            return
        for channel in channels:
            self._confirmed.pop(channel, None)
        try:
            await self._pubsub.unsubscribe(*channels)
        except (RedisError, OSError) as exc:  # the reader reconnects and resubscribes
            log.warning("event bus: UNSUBSCRIBE failed: %s", exc)

    async def _read(self) -> None:
        while True:
            try:
                message = await self._pubsub.get_message(timeout=None)
            except (RedisError, OSError) as exc:
                log.warning("event bus: lost Redis (%s); dropping local subscribers", exc)
                self._fanout.drop_all()
                await asyncio.sleep(RETRY_DELAY)
                continue
            if message is not None:
                self._handle(message)

    def _handle(self, message: dict[str, Any]) -> None:
        kind = message["type"]
        channel = _text(message["channel"])
        if kind == "subscribe":
            future = self._confirmed.get(channel)
            if future is not None and not future.done():
                future.set_result(None)
        elif kind == "message":
            try:
                event = Event.from_json(message["data"])
            except ValueError as exc:
                log.warning("event bus: ignoring a message on %s: %s", channel, exc)
                return
            self._fanout.deliver(channel, event)

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("the event bus is closed")


def _text(value: bytes | str) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value
