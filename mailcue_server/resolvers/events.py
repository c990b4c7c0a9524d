"""Live events for one caller: the one place that decides which events a principal sees.

The SSE stream (``rest_compat/events.py``) and GraphQL subscriptions
(``schema/events.py``) both open an :class:`EventFeed` here, so the scope, the
mailbox rule of ``access.py`` and the filters are applied identically. A
feed subscribes to one mailbox's channel when filtered by mailbox, else to
the firehose, and checks each event's mailbox with
:func:`~mailcue_server.resolvers.access.can_read_events_of`, remembering the
answer per address for the life of the stream.

The SSE stream resumes (:meth:`EventFeed.resume`): events the bus still
buffers after the client's ``Last-Event-ID`` go through the very same
filter and visibility check as live ones, as the caller's rights are now.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass

from mailcue_server.errors import Invalid
from mailcue_server.events.bus import (
    Event,
    EventBus,
    EventType,
    Replay,
    channel_for,
    cursor_order,
)
from mailcue_server.resolvers.access import can_read_events_of, reachable_mailboxes
from mailcue_server.resolvers.context import Context, Principal
from mailcue_server.schema.types.events import MailEvent
from mailcue_server.store.mailboxes import normalise_address

EVENTS_SCOPE = "events:read"
VISIBILITY_CACHE_SIZE = 10_000
"""Addresses whose answer a stream remembers; test mode makes a mailbox per new
recipient, so a long-lived admin stream must not remember them all."""


@dataclass(frozen=True)
class EventFilter:
    """What a caller asked for; ``None`` means no restriction."""

    mailbox: str | None = None
    types: frozenset[EventType] | None = None

    def matches(self, event: Event) -> bool:
        if self.types is not None and event.type not in self.types:
            return False
        return self.mailbox is None or event.mailbox.lower() == self.mailbox

    @property
    def channel(self) -> str:
        """One mailbox's channel when filtered by mailbox, else the firehose."""
        return channel_for(self.mailbox)


def parse_types(values: Iterable[str] | None) -> frozenset[EventType] | None:
    """Event type names (``email.received``...) as a set; blank or none means all.

    Raises:
        Invalid: A name that is not an event type.
    """
    names = [value.strip() for value in values or () if value.strip()]
    if not names:
        return None
    known = {kind.value: kind for kind in EventType}
    unknown = sorted({name for name in names if name not in known})
    if unknown:
        raise Invalid(
            f"Unknown event type(s) {', '.join(unknown)}; expected any of {', '.join(known)}"
        )
    return frozenset(known[name] for name in names)


class Visibility:
    """Whether each event's mailbox may be shown to one principal, remembered per address.

    The answer for an address is looked up once per stream and looked up
    again when that mailbox is created (test mode creates it on first mail,
    possibly for someone else). On ``mailbox.deleted`` the remembered answer
    is used one last time: the mailbox is gone, but whoever saw it exist may
    see it go (``can_read_events_of`` alone shows such events to admins only).
    """

    def __init__(self, principal: Principal, known: dict[str, bool] | None = None) -> None:
        self._principal = principal
        # Admins reach every mailbox (access.py); only an allow-list narrows that.
        self._sees_all = principal.is_admin and principal.allowed_mailboxes is None
        self._known: OrderedDict[str, bool] = OrderedDict(known or {})

    async def allows(self, event: Event) -> bool:
        if self._sees_all:
            return True
        address = event.mailbox.lower()
        if event.type is EventType.MAILBOX_DELETED:
            remembered = self._known.pop(address, None)
            if remembered is not None:
                return remembered
        elif event.type is EventType.MAILBOX_CREATED:
            self._known.pop(address, None)
        answer = self._known.get(address)
        if answer is None:
            answer = await can_read_events_of(self._principal, address)
            if event.type is not EventType.MAILBOX_DELETED:
                self._remember(address, answer)
        else:
            self._known.move_to_end(address)
        return answer

    def _remember(self, address: str, answer: bool) -> None:
        self._known[address] = answer
        if len(self._known) > VISIBILITY_CACHE_SIZE:
            self._known.popitem(last=False)


@dataclass(frozen=True)
class Resumed:
    """A resumed feed: what the client missed, then live events.

    Attributes:
        gap: Events after the client's id are no longer buffered: it must reload.
        position: The id the client stands at once told about the gap or given
            ``events``' replayed part; later events have larger ids.
        events: The missed events the caller may see, then the live ones.
    """

    gap: bool
    position: str
    events: AsyncIterator[MailEvent]


class EventFeed:
    """The events one caller may see, once :meth:`open` has subscribed to the bus."""

    def __init__(self, bus: EventBus, visibility: Visibility, wanted: EventFilter) -> None:
        self._bus = bus
        self._visibility = visibility
        self.filter = wanted

    @asynccontextmanager
    async def open(self) -> AsyncIterator[AsyncIterator[MailEvent]]:
        """Subscribe; every event published after entering is considered.

        The iterator ends when the bus closes and raises
        :class:`~mailcue_server.events.bus.SubscriptionDropped` (after the
        events buffered before it) when the caller read too slowly and missed
        events: it should reload what it shows and open a new feed.
        """
        async with self._bus.subscribe([self.filter.channel]) as events:
            yield self._visible(events)

    @asynccontextmanager
    async def resume(self, last_event_id: str | None) -> AsyncIterator[Resumed]:
        """Subscribe, then replay what followed ``last_event_id`` (None: start now).

        Subscribing first and reading the buffer second leaves no hole between
        them; live events up to the buffer's head were in the replay (or
        before the client's id, or in the gap) and are skipped.
        """
        async with self._bus.subscribe([self.filter.channel]) as live:
            replay = await self._bus.replay(last_event_id)
            joined = self._visible(_after_replay(replay, live))
            yield Resumed(gap=replay.gap, position=replay.head, events=joined)

    async def _visible(self, events: AsyncIterator[Event]) -> AsyncIterator[MailEvent]:
        async for event in events:
            if self.filter.matches(event) and await self._visibility.allows(event):
                yield MailEvent.from_event(event)


async def _after_replay(replay: Replay, live: AsyncIterator[Event]) -> AsyncIterator[Event]:
    for event in replay.events:
        yield event
    head = cursor_order(replay.head)
    async for event in live:
        order = cursor_order(event.id)
        if head is not None and order is not None and order <= head:
            continue
        yield event


async def watch_events(
    ctx: Context, *, mailbox: str | None = None, types: Iterable[str] | None = None
) -> EventFeed:
    """A feed of the caller's live events, optionally of one mailbox and some event types.

    A mailbox filter is not checked for existence: a test may watch an
    address before its first mail creates the mailbox. Its events still show
    only if the caller may read that mailbox, so nothing is revealed.

    Raises:
        Unauthenticated: No credentials.
        MissingScope: An API key without ``events:read``.
        Invalid: An unknown event type.
    """
    principal = ctx.require_principal()
    principal.require_scope(EVENTS_SCOPE)
    address = normalise_address(mailbox) if mailbox else None
    wanted = EventFilter(mailbox=address or None, types=parse_types(types))
    known: dict[str, bool] = {}
    if not principal.is_admin:
        # A user's own mailboxes, up front: one query instead of one per address,
        # and it lets them see their mailbox's deletion (see Visibility).
        known = dict.fromkeys((m.address for m in await reachable_mailboxes(principal)), True)
    return EventFeed(ctx.services.bus, Visibility(principal, known), wanted)
