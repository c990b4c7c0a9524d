"""The event bus contract: the Event type, channel names and the EventBus Protocol.

The store publishes an event after every committed change to mail
(``store/messages.py``, ``store/mailboxes.py``); GraphQL subscriptions, the
SSE stream, IMAP IDLE and the web UI subscribe. Two implementations exist:
``events.memory.MemoryBus`` for one process and ``events.redis.RedisBus`` for
several nodes sharing a Redis server.

Every event goes to two channels: the one of its mailbox and the firehose
that sees all mailboxes. Channel names come only from :func:`channel_for`.

Publishing stamps each event with a cursor id, ``<int>-<int>`` (the memory
bus: its start time in ms and a counter; Redis: the id of the event in a
Redis stream, so every node orders the ids alike). Each bus keeps the last
events in a bounded buffer, from which :meth:`EventBus.replay` hands a
reconnecting SSE client what it missed after the id it last saw.
"""

from __future__ import annotations

import itertools
import json
import logging
import re
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Protocol
from uuid import uuid4

log = logging.getLogger(__name__)

DEFAULT_QUEUE_SIZE = 1000
"""Events a subscriber may have waiting before it counts as too slow and is dropped."""
DEFAULT_REPLAY_SIZE = 5000
"""Recent events a bus keeps for clients that reconnect (see :meth:`EventBus.replay`)."""

_CURSOR = re.compile(r"([0-9]{1,20})-([0-9]{1,20})")


class EventType(StrEnum):
    """What happened. Names are past tense; the values are the SSE event names."""

    EMAIL_RECEIVED = "email.received"
    EMAIL_DELETED = "email.deleted"
    EMAIL_FLAGS_CHANGED = "email.flags_changed"
    EMAIL_COPIED = "email.copied"
    EMAIL_MOVED = "email.moved"
    EMAIL_SENT = "email.sent"
    MAILBOX_CREATED = "mailbox.created"
    MAILBOX_DELETED = "mailbox.deleted"
    MAILBOX_PURGED = "mailbox.purged"
    FOLDER_CHANGED = "folder.changed"


def channel_for(mailbox: str | None) -> str:
    """The channel of one mailbox's events, or with ``None`` the firehose of all events.

    Args:
        mailbox: A mailbox address (matched case-insensitively), or ``None``.
    """
    if mailbox is None:
        return "mailcue:events"
    return f"mailcue:mailbox:{mailbox.lower()}"


ALL_EVENTS = channel_for(None)


def _now() -> datetime:
    return datetime.now(UTC)


# Unique within this process, and across processes by the random prefix: publishing
# replaces the id with the bus's cursor anyway, so it need not cost a uuid4 (a
# system call for randomness) on every event of the SMTP hot path.
_ID_PREFIX = uuid4().hex[:12]
_id_counter = itertools.count()


def _new_id() -> str:
    return f"{_ID_PREFIX}{next(_id_counter):x}"


@dataclass(frozen=True, slots=True)
class Event:
    """One change to mail, as published after its transaction committed.

    Attributes:
        type: What happened.
        mailbox: The mailbox address the change belongs to.
        folder: The folder, for message and folder events.
        uid: The message's IMAP UID, for single-message events.
        data: Details for subscribers (subject, from, flags...), JSON-serialisable.
        id: Unique id of this event; publishing replaces it with the bus's cursor id
            (the SSE ``id:``, ``Last-Event-ID`` on reconnect).
        at: When the change was made (UTC).
    """

    type: EventType
    mailbox: str
    folder: str | None = None
    uid: int | None = None
    data: dict[str, Any] = field(default_factory=dict)
    id: str = field(default_factory=_new_id)
    at: datetime = field(default_factory=_now)

    @property
    def channels(self) -> tuple[str, str]:
        """Where this event is published: its mailbox's channel and the firehose."""
        return channel_for(self.mailbox), ALL_EVENTS

    def to_json(self) -> str:
        """The wire form used between nodes."""
        return json.dumps(
            {
                "id": self.id,
                "type": self.type.value,
                "mailbox": self.mailbox,
                "folder": self.folder,
                "uid": self.uid,
                "data": self.data,
                "at": self.at.isoformat(),
            },
            separators=(",", ":"),
            ensure_ascii=False,
        )

    @classmethod
    def from_json(cls, payload: str | bytes) -> Event:
        """Read :meth:`to_json` output.

        Raises:
            ValueError: The payload is not an event (or of a type this version does not know).
        """
        try:
            raw = json.loads(payload)
            return cls(
                type=EventType(raw["type"]),
                mailbox=str(raw["mailbox"]),
                folder=raw.get("folder"),
                uid=raw.get("uid"),
                data=dict(raw.get("data") or {}),
                id=str(raw["id"]),
                at=datetime.fromisoformat(raw["at"]),
            )
        except (KeyError, TypeError, AttributeError, json.JSONDecodeError) as exc:
            raise ValueError(f"not an event: {exc}") from exc


def cursor_order(cursor: str | None) -> tuple[int, int] | None:
    """The position a cursor id (``<int>-<int>``) stands for; None for anything else.

    Ids of one bus compare by this: a later event has a larger position.
    """
    found = _CURSOR.fullmatch(cursor or "")
    if found is None:
        return None
    return int(found.group(1)), int(found.group(2))


def format_cursor(order: tuple[int, int]) -> str:
    return f"{order[0]}-{order[1]}"


@dataclass(frozen=True, slots=True)
class Replay:
    """What a client that last saw one event id missed, from the bus's buffer.

    Attributes:
        events: The buffered events after that id, oldest first (every channel).
        head: The id of the latest event the bus had published when asked
            (a cursor even before the first event): a client at ``head`` missed nothing.
        gap: Events after that id are gone (the buffer is smaller than what
            was missed, the id is unknown or malformed, or the bus restarted):
            the client must reload; ``events`` is then empty.
    """

    events: list[Event]
    head: str
    gap: bool = False


class SubscriptionDropped(Exception):
    """Raised by a subscription's iterator after it fell too far behind (or lost its feed).

    The events buffered before the drop are delivered first. The subscriber
    missed events after them; it should resynchronise (reload) and subscribe again.
    """


class EventBus(Protocol):
    """Publish events to channels and subscribe to channels.

    Publishing never waits for subscribers: each subscriber has a bounded
    queue, and one that lets it fill up is dropped
    (:class:`SubscriptionDropped`) instead of slowing the publisher down.
    """

    async def publish(self, event: Event) -> None:
        """Send ``event`` to its channels (:attr:`Event.channels`)."""
        ...

    async def publish_many(self, events: Sequence[Event]) -> None:
        """Send several events in order, in one round trip where the transport allows."""
        ...

    def subscribe(
        self, channels: Iterable[str]
    ) -> AbstractAsyncContextManager[AsyncIterator[Event]]:
        """Listen on ``channels`` (names from :func:`channel_for`).

        The subscription is live when the context is entered: every event
        published after that point is delivered. The iterator ends when the
        bus closes and raises :class:`SubscriptionDropped` when the
        subscriber was too slow.
        """
        ...

    async def replay(self, after: str | None) -> Replay:
        """The buffered events after the cursor id ``after`` (None: none, just the head).

        Call it after subscribing: the live subscription then repeats at most
        the events up to :attr:`Replay.head`, which the caller skips.
        """
        ...

    async def close(self) -> None:
        """End every subscription and release connections."""
        ...


async def publish_quietly(bus: EventBus, events: Sequence[Event]) -> None:
    """Publish what a writer just committed; a failure is logged, never raised.

    The change is durable by now. Raising would turn a stored message into an
    SMTP or API error that makes the client send it again (a duplicate), so a
    lost notification is the lesser harm; subscribers of a Redis bus that lost
    its connection are dropped and resynchronise (``events/redis.py``).
    """
    if not events:
        return
    try:
        await bus.publish_many(events)
    except Exception:
        log.exception("could not publish %d event(s) after commit", len(events))
