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

Every event is also appended to one Redis stream (:data:`LOG_KEY`, capped
near ``replay_size`` entries) by the same Lua script that publishes it, so
the stream id Redis assigns is the event's id on every node, and ids and
pub/sub order agree even when nodes publish at once. A client that
reconnects to any node with the last id it saw gets the rest from the
stream (:meth:`RedisBus.replay`). On the channels a message is
``<stream id> <event JSON>``; a bare JSON event (no id) is still accepted.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError, ResponseError

from mailcue_server.events.bus import (
    DEFAULT_QUEUE_SIZE,
    DEFAULT_REPLAY_SIZE,
    Event,
    Replay,
    cursor_order,
)
from mailcue_server.events.memory import Fanout

log = logging.getLogger(__name__)

SUBSCRIBE_TIMEOUT = 5.0
RETRY_DELAY = 1.0
LOG_KEY = "mailcue:events:log"
_FIELD = "event"  # the stream entry's one field, as the script below names it
# KEYS[1] the log; ARGV: cap, event JSON, channels... Atomic, so the order of
# stream ids is the order subscribers on every node receive the events in.
_PUBLISH = """
local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', 'event', ARGV[2])
local message = id .. ' ' .. ARGV[2]
for i = 3, #ARGV do
  redis.call('PUBLISH', ARGV[i], message)
end
return id
"""


class RedisBus:
    """An :class:`~mailcue_server.events.bus.EventBus` on Redis pub/sub.

    Args:
        url: A ``redis://`` (or ``rediss://``) URL.
        queue_size: The per-subscriber buffer (see :class:`Fanout`).
        replay_size: About how many recent events the shared log keeps (at least this).
        log_key: The Redis stream of recent events; nodes of one cluster share it.
    """

    def __init__(
        self,
        url: str,
        *,
        queue_size: int = DEFAULT_QUEUE_SIZE,
        replay_size: int = DEFAULT_REPLAY_SIZE,
        log_key: str = LOG_KEY,
    ) -> None:
        self._client: aioredis.Redis = aioredis.Redis.from_url(url)
        self._publish_script = self._client.register_script(_PUBLISH)
        self._replay_size = max(replay_size, 1)
        self._log_key = log_key
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
                await self._publish_script(
                    keys=[self._log_key],
                    args=[self._replay_size, event.to_json(), *event.channels],
                    client=pipe,
                )
            await pipe.execute()

    async def replay(self, after: str | None) -> Replay:
        # One MULTI: the stream's state and its entries as of the same instant.
        async with self._client.pipeline(transaction=True) as pipe:
            pipe.xinfo_stream(self._log_key)
            if after is not None and cursor_order(after) is not None:
                # Everything after it: trimming keeps about replay_size entries.
                pipe.xrange(self._log_key, min=f"({after}")
            found = await pipe.execute(raise_on_error=False)
        info = found[0]
        if isinstance(info, ResponseError):  # no stream yet (or Redis lost it)
            return Replay([], "0-0", gap=after is not None and after != "0-0")
        if isinstance(info, Exception):
            raise info
        head = _text(info["last-generated-id"])
        if after is None:
            return Replay([], head)
        seen, last = cursor_order(after), cursor_order(head)
        if seen is None or last is None or seen > last or _trimmed_after(info, seen):
            return Replay([], head, gap=True)
        if isinstance(found[1], Exception):
            raise found[1]
        events = [_logged(entry_id, fields) for entry_id, fields in found[1]]
        return Replay([event for event in events if event is not None], head)

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
                event = _decode(message["data"])
            except ValueError as exc:
                log.warning("event bus: ignoring a message on %s: %s", channel, exc)
                return
            self._fanout.deliver(channel, event)

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("the event bus is closed")


def _text(value: bytes | str) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


def _trimmed_after(info: dict[str, Any], seen: tuple[int, int]) -> bool:
    """Whether the log let go of entries the client has not seen.

    Trimming drops the oldest entries, so that is when the client's id lies
    before the first entry left and something was dropped (``entries-added``,
    Redis 7, exceeds the length; older Redis is assumed to have trimmed). A
    client that saw exactly the last dropped entry is told of a gap it does
    not have: Redis does not keep that id, and a needless reload is harmless.
    """
    first = info.get("first-entry")
    first_order = cursor_order(_text(first[0])) if first else None
    if first_order is None or seen >= first_order:
        return False
    added = info.get("entries-added")
    return added is None or int(added) > int(info["length"])


def _decode(payload: bytes | str) -> Event:
    """A channel message: ``<stream id> <JSON>``, or a bare JSON event.

    Raises:
        ValueError: Not an event.
    """
    data = payload if isinstance(payload, bytes) else payload.encode()
    if data.startswith(b"{"):
        return Event.from_json(data)
    stream_id, _, body = data.partition(b" ")
    event = Event.from_json(body)
    return dataclasses.replace(event, id=_text(stream_id))


def _logged(entry_id: bytes | str, fields: dict[bytes, bytes]) -> Event | None:
    """An event read back from the log (None for an entry this version cannot read)."""
    try:
        event = Event.from_json(fields[_FIELD.encode()])
    except (KeyError, ValueError) as exc:
        log.warning("event bus: skipping log entry %s: %s", _text(entry_id), exc)
        return None
    return dataclasses.replace(event, id=_text(entry_id))
