"""Subscription root fields: the caller's live mail events over graphql-transport-ws.

The same feed as the SSE stream (``resolvers/events.py``). Expected failures
(no credentials, missing ``events:read``, an unknown type) end the
subscription with a GraphQL error whose ``extensions.code`` names the reason.
A subscriber too slow to keep up gets a ``STREAM_RESET`` error and the end of
the subscription: it missed events and should reload, then subscribe again.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator

import strawberry
from graphql import GraphQLError

from mailcue_server.errors import MailcueError
from mailcue_server.events.bus import EventType, SubscriptionDropped
from mailcue_server.resolvers import events, mail_changes
from mailcue_server.schema.context import Info
from mailcue_server.schema.errors import error_code
from mailcue_server.schema.types.events import MailEvent
from mailcue_server.schema.types.mail_changes import MailChange

STREAM_RESET = "STREAM_RESET"


async def _follow(
    info: Info, mailbox: str | None, types: list[str] | None
) -> AsyncGenerator[MailEvent, None]:
    try:
        feed = await events.watch_events(info.context.ctx, mailbox=mailbox, types=types)
    except MailcueError as exc:
        raise GraphQLError(exc.message, extensions={"code": error_code(exc).name}) from exc
    try:
        async with feed.open() as live:
            async for event in live:
                yield event
    except SubscriptionDropped as exc:
        raise GraphQLError(
            "Events were missed; reload and subscribe again",
            extensions={"code": STREAM_RESET},
        ) from exc


async def _follow_changes(info: Info, mailbox: str | None) -> AsyncGenerator[MailChange, None]:
    async for event in _follow(info, mailbox, None):
        yield await mail_changes.change_of(event)


@strawberry.type
class EventsSubscription:
    @strawberry.subscription(
        description="Live mail events you may see (needs events:read), optionally of one "
        "mailbox and some types (email.received, email.deleted, ...)."
    )
    def events(
        self, info: Info, mailbox: str | None = None, types: list[str] | None = None
    ) -> AsyncGenerator[MailEvent, None]:
        return _follow(info, mailbox, types)

    @strawberry.subscription(
        description="Changes a mail list applies without fetching again (needs events:read): "
        "new, deleted, moved and re-flagged messages with their rows, mailboxes created "
        "and deleted; optionally of one mailbox. On STREAM_RESET, refetch and subscribe again."
    )
    def mail_changes(
        self, info: Info, mailbox: str | None = None
    ) -> AsyncGenerator[MailChange, None]:
        return _follow_changes(info, mailbox)

    @strawberry.subscription(description="Messages arriving in one mailbox (email.received).")
    def email_received(self, info: Info, mailbox: str) -> AsyncGenerator[MailEvent, None]:
        return _follow(info, mailbox, [EventType.EMAIL_RECEIVED.value])
