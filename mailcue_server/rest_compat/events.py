"""/api/v1/events/stream: the caller's live mail events as Server-Sent Events.

Each event is ``event: <type>`` (``email.received``...), ``id: <event id>``
and one ``data:`` line holding a JSON object: the event's details plus
``type, mailbox, folder, uid, id, at``. A comment line follows the
subscription (from then on nothing is missed), a heartbeat comment keeps
proxies from closing an idle stream, and a stream lives at most
:data:`MAX_STREAM_SECONDS`; EventSource and the official SDK reconnect on
their own. A reader too slow to keep up gets ``event: stream.reset`` and
the end of the stream: it missed events and should reload.
"""

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Query
from sse_starlette import EventSourceResponse, ServerSentEvent

from mailcue_server.events.bus import SubscriptionDropped
from mailcue_server.resolvers import events
from mailcue_server.rest_compat.deps import Ctx
from mailcue_server.schema.types.events import MailEvent

router = APIRouter(prefix="/events", tags=["Events"])

HEARTBEAT_SECONDS = 30
MAX_STREAM_SECONDS = 3600
"""Streams end after an hour so credentials are checked again on reconnect
(a revoked key or a deactivated user stops receiving within the hour)."""
RESET_EVENT = "stream.reset"
SUBSCRIBED_COMMENT = "subscribed"


def event_payload(event: MailEvent) -> dict[str, object]:
    """The ``data:`` object: the event's details, then its envelope.

    The envelope wins over a detail of the same name, so ``id`` is always the
    event id and ``type``/``mailbox`` mean the same for every event type.
    """
    details = event.data if isinstance(event.data, dict) else {}
    return {
        **details,
        "type": event.type,
        "mailbox": event.mailbox,
        "folder": event.folder,
        "uid": event.uid,
        "id": event.id,
        "at": event.at.isoformat(),
    }


def to_sse(event: MailEvent) -> ServerSentEvent:
    data = json.dumps(event_payload(event), separators=(",", ":"), ensure_ascii=False)
    return ServerSentEvent(data=data, event=event.type, id=event.id)


def _heartbeat() -> ServerSentEvent:
    return ServerSentEvent(comment="heartbeat")


async def _stream(feed: events.EventFeed) -> AsyncIterator[ServerSentEvent]:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + MAX_STREAM_SECONDS
    async with feed.open() as live:
        yield ServerSentEvent(comment=SUBSCRIBED_COMMENT)
        try:
            while True:
                # The timeout wraps the read only, never a yield: the task that
                # sends our chunks is not ours to cancel.
                async with asyncio.timeout_at(deadline):
                    event = await anext(live)
                yield to_sse(event)
        except (StopAsyncIteration, TimeoutError):
            return
        except SubscriptionDropped:
            yield ServerSentEvent(data="{}", event=RESET_EVENT)


@router.get(
    "/stream",
    response_class=EventSourceResponse,
    responses={200: {"content": {"text/event-stream": {}}, "description": "Event stream"}},
)
async def event_stream(
    ctx: Ctx,
    mailbox: Annotated[
        str | None, Query(description="Only events of this mailbox address.")
    ] = None,
    types: Annotated[
        str | None,
        Query(description="Comma-separated event types, e.g. `email.received,email.deleted`."),
    ] = None,
) -> EventSourceResponse:
    """Open an SSE stream of the mail events you may see.

    Needs the `events:read` scope; you see events of the mailboxes you own
    (admins: all), narrowed by an API key's mailbox allow-list. Each message
    has `event:` the type (`email.received`, `email.deleted`, ...), `id:` the
    event id and `data:` a JSON object (`type, mailbox, folder, uid, id, at`
    and the event's details). `event: stream.reset` means you read too slowly
    and missed events: reload, then reconnect. The stream sends a heartbeat
    comment every 30 seconds to keep the TCP connection alive through proxies
    and load balancers.
    """
    feed = await events.watch_events(
        ctx, mailbox=mailbox, types=types.split(",") if types else None
    )
    return EventSourceResponse(
        _stream(feed), ping=HEARTBEAT_SECONDS, ping_message_factory=_heartbeat
    )
