"""Live changes a mail list applies as they come, without fetching again (GraphQL only)."""

from __future__ import annotations

from datetime import datetime
from enum import Enum

import strawberry

from mailcue_server.schema.types.email_list import EmailRow


@strawberry.enum(name="MailChangeKind")
class MailChangeKind(Enum):
    RECEIVED = "email.received"
    DELETED = "email.deleted"
    FLAGS_CHANGED = "email.flags_changed"
    MOVED = "email.moved"
    COPIED = "email.copied"
    SENT = "email.sent"
    MAILBOX_CREATED = "mailbox.created"
    MAILBOX_DELETED = "mailbox.deleted"
    MAILBOX_PURGED = "mailbox.purged"
    FOLDER_CHANGED = "folder.changed"


@strawberry.type(
    name="MailChange",
    description="One committed change, with what a list needs to apply it: RECEIVED, MOVED "
    "and COPIED carry the new `row` (as emailConnection shows it; null if it is already "
    "gone again); MOVED also the old place (`fromFolder`, `fromUid`) to remove; DELETED "
    "names `mailbox`, `folder`, `uid`; FLAGS_CHANGED carries `flags` and `isRead`; "
    "MAILBOX_CREATED/DELETED name the mailbox (and `mailboxId`).",
)
class MailChange:
    id: str = strawberry.field(description="The event's id; later changes have larger ids.")
    kind: MailChangeKind
    mailbox: str
    at: datetime
    folder: str | None = None
    uid: int | None = None
    row: EmailRow | None = None
    flags: list[str] | None = None
    is_read: bool | None = None
    from_folder: str | None = None
    from_uid: int | None = None
    mailbox_id: str | None = None
