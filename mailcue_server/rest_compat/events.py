"""/api/v1/events/stream: the caller's live mail events as Server-Sent Events.

Every message has ``event:``, ``id:`` and one ``data:`` line holding a JSON
object with ``type`` and ``id`` like the lines above it:

- mail events (``email.received``...): the event's details plus
  ``type, mailbox, folder, uid, id, at``; ``id`` is the bus's cursor id;
- ``heartbeat`` every ``MAILCUE_SSE_HEARTBEAT_SECONDS``: ``type, id, time``,
  ``id`` being the last event id this stream stands at (so a client that saw
  only heartbeats resumes from there);
- ``stream.reset``: the client missed events and should reload what it shows.
  ``reason`` says why: ``gap`` (first message after a reconnect whose
  ``Last-Event-ID`` is older than the replay buffer, unknown or malformed;
  the stream then goes on live) or ``too_slow`` (it read too slowly; the
  stream ends, and reconnecting with ``Last-Event-ID`` replays what the
  buffer still holds).

A client that reconnects with ``Last-Event-ID`` (EventSource does) first gets
the events it missed, through the same filters and rights as live ones. A
``: subscribed`` comment follows the subscription (from then on nothing is
missed). A stream lives at most :data:`MAX_STREAM_SECONDS`.
"""

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Header, Query
from sse_starlette import EventSourceResponse, ServerSentEvent

from mailcue_server.events.bus import SubscriptionDropped
from mailcue_server.resolvers import events
from mailcue_server.rest_compat.deps import Ctx
from mailcue_server.schema.types.events import MailEvent

router = APIRouter(prefix="/events", tags=["Events"])

MAX_STREAM_SECONDS = 3600
"""Streams end after an hour so credentials are checked again on reconnect
(a revoked key or a deactivated user stops receiving within the hour)."""
HEARTBEAT_EVENT = "heartbeat"
RESET_EVENT = "stream.reset"
RESET_GAP = "gap"
RESET_TOO_SLOW = "too_slow"
SUBSCRIBED_COMMENT = "subscribed"
_MAX_ID_LENGTH = 64  # longer than any id we hand out: treated as unknown (a gap)


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


def _message(kind: str, position: str, data: dict[str, object]) -> ServerSentEvent:
    text = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
    return ServerSentEvent(data=text, event=kind, id=position)


def to_sse(event: MailEvent) -> ServerSentEvent:
    return _message(event.type, event.id, event_payload(event))


def _heartbeat(position: str) -> ServerSentEvent:
    now = datetime.now(UTC).isoformat()
    data: dict[str, object] = {"type": HEARTBEAT_EVENT, "id": position, "time": now}
    return _message(HEARTBEAT_EVENT, position, data)


def _reset(position: str, reason: str, last_event_id: str | None = None) -> ServerSentEvent:
    data: dict[str, object] = {"type": RESET_EVENT, "id": position, "reason": reason}
    if last_event_id is not None:
        data["last_event_id"] = last_event_id
    return _message(RESET_EVENT, position, data)


async def _stream(
    feed: events.EventFeed, last_event_id: str | None, heartbeat: float
) -> AsyncIterator[ServerSentEvent]:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + MAX_STREAM_SECONDS
    next_beat = loop.time() + heartbeat
    async with feed.resume(last_event_id) as resumed:
        yield ServerSentEvent(comment=SUBSCRIBED_COMMENT)
        position = resumed.position
        if resumed.gap:
            yield _reset(position, RESET_GAP, last_event_id)
        # The next event is awaited in a task of its own that survives a heartbeat:
        # timing out an anext() would close the feed. Waits wrap reads, never a
        # yield: the task that sends our chunks is not ours to cancel.
        pending: asyncio.Future[MailEvent] | None = None
        try:
            while True:
                now = loop.time()
                if now >= deadline:
                    return
                if now >= next_beat:
                    next_beat = now + heartbeat
                    yield _heartbeat(position)
                    continue
                if pending is None:
                    pending = asyncio.ensure_future(anext(resumed.events))
                done, _ = await asyncio.wait({pending}, timeout=min(next_beat, deadline) - now)
                if not done:
                    continue
                event, pending = pending.result(), None
                position = event.id
                yield to_sse(event)
        except StopAsyncIteration:
            return
        except SubscriptionDropped:
            yield _reset(position, RESET_TOO_SLOW)
        finally:
            if pending is not None and not pending.done():
                pending.cancel()
                with contextlib.suppress(asyncio.CancelledError, StopAsyncIteration):
                    await pending


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
    last_event_id_query: Annotated[
        str | None,
        Query(
            alias="last_event_id",
            description="Resume after this event id, for clients that cannot send the "
            "`Last-Event-ID` header (the header wins).",
        ),
    ] = None,
    last_event_id: Annotated[
        str | None,
        Header(
            alias="Last-Event-ID",
            description="Resume after this event id: the events you missed come first.",
        ),
    ] = None,
) -> EventSourceResponse:
    """Open an SSE stream of the mail events you may see.

    Needs the `events:read` scope; you see events of the mailboxes you own
    (admins: all), narrowed by an API key's mailbox allow-list. Each message
    has `event:` the type (`email.received`, `email.deleted`, ...), `id:` the
    event id and `data:` a JSON object (`type, mailbox, folder, uid, id, at`
    and the event's details).

    `event: heartbeat` (data `type, id, time`: the server time) comes every 15
    seconds (`MAILCUE_SSE_HEARTBEAT_SECONDS`). Reconnect with `Last-Event-ID`
    (EventSource does) to get the events you missed first, from a buffer of
    the latest events (`MAILCUE_EVENT_REPLAY_SIZE`; shared by all nodes with
    Redis). If that id is older than the buffer (or unknown), the first event is
    `stream.reset` with `reason: gap`: reload what you show; the stream then
    goes on live. `stream.reset` with `reason: too_slow` means you read too
    slowly: the stream ends; reconnect with `Last-Event-ID`.
    """
    feed = await events.watch_events(
        ctx, mailbox=mailbox, types=types.split(",") if types else None
    )
    resume_after = last_event_id if last_event_id is not None else last_event_id_query
    if resume_after is not None:
        # Empty: start afresh. Too long to be ours: kept unparseable, so a gap.
        resume_after = resume_after.strip()[: _MAX_ID_LENGTH + 1] or None
    heartbeat = ctx.settings.sse_heartbeat_seconds
    # Our heartbeat events keep proxies from closing an idle stream: no comment pings.
    return EventSourceResponse(_stream(feed, resume_after, heartbeat), ping=0)
