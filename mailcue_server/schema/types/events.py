"""Live mail events as both APIs show them: one ``MailEvent`` per committed change."""

from __future__ import annotations

from datetime import datetime

import strawberry
from strawberry.scalars import JSON

from mailcue_server.events.bus import Event


@strawberry.type(
    name="MailEvent",
    description="One change to mail: a message received, flagged, moved or deleted, "
    "a mailbox created or deleted, a folder changed.",
)
class MailEvent:
    id: str = strawberry.field(
        description="Unique id of this event; a later event has a larger id "
        "(the SSE `id:`, sent back as `Last-Event-ID` to resume)."
    )
    type: str = strawberry.field(
        description="What happened: email.received, email.deleted, email.flags_changed, "
        "email.copied, email.moved, mailbox.created, mailbox.deleted, mailbox.purged, "
        "folder.changed... (the SSE `event:` name)."
    )
    mailbox: str = strawberry.field(description="The mailbox address the change belongs to.")
    at: datetime = strawberry.field(description="When the change was committed (UTC).")
    folder: str | None = strawberry.field(
        default=None, description="The folder, for message and folder events."
    )
    uid: int | None = strawberry.field(
        default=None, description="The message's IMAP UID, for single-message events."
    )
    data: JSON = strawberry.field(
        default_factory=dict,
        description="Details by event type: subject, from, to, size, source (email.received); "
        "flags, seen (email.flags_changed); from_folder, from_uid (email.copied, email.moved)...",
    )

    @classmethod
    def from_event(cls, event: Event) -> MailEvent:
        """The shape of a bus event both APIs serialise."""
        return cls(
            id=event.id,
            type=event.type.value,
            mailbox=event.mailbox,
            at=event.at,
            folder=event.folder,
            uid=event.uid,
            data=JSON(dict(event.data)),
        )
