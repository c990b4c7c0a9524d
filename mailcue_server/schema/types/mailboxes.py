"""Mailboxes, their folders and counts."""

from __future__ import annotations

from datetime import datetime
from enum import Enum
from typing import Any

import strawberry


@strawberry.enum(name="MailboxPurpose")
class MailboxPurpose(Enum):
    STANDARD = "standard"
    DELIVERABILITY = "deliverability"


@strawberry.type(name="FolderInfo")
class FolderInfo:
    name: str
    message_count: int
    unseen_count: int
    size_bytes: int = 0
    special_use: str | None = None  # "\\Sent", "\\Junk"... (RFC 6154)


@strawberry.type(name="Mailbox")
class MailboxResponse:
    id: str
    address: str
    display_name: str
    domain: str
    is_active: bool
    created_at: datetime
    username: str = strawberry.field(default="", description="The local part of the address.")
    is_catchall: bool = False
    purpose: MailboxPurpose = MailboxPurpose.STANDARD
    quota_mb: int = 500
    email_count: int = strawberry.field(default=0, description="Messages in every folder.")
    unread_count: int = strawberry.field(default=0, description="Unseen messages in every folder.")
    junk_count: int = 0
    signature: str = ""
    owner_id: str | None = None
    # This mailbox's own retention limits: null follows the server-wide setting, 0 is no
    # limit here. (strawberry.field would turn the optional into a type pydantic cannot read.)
    retention_max_messages: int | None = None
    retention_max_age_days: int | None = None

    # A method, not a dataclass field: GraphQL only, REST's Mailbox keeps its shape.
    @strawberry.field(
        description="Its folders with their counts, INBOX first (one statement for a "
        "whole list of mailboxes)."
    )
    async def folders(self, info: strawberry.Info[Any, None]) -> list[FolderInfo]:
        found: list[FolderInfo] = await info.context.loaders.folders(self.id)
        return found


@strawberry.type(name="MailboxList")
class MailboxListResponse:
    mailboxes: list[MailboxResponse]
    total: int


@strawberry.type(name="MailboxStats")
class MailboxStats:
    mailbox_id: str
    address: str
    total_emails: int
    unread_emails: int
    total_size_bytes: int
    folders: list[FolderInfo]


@strawberry.input(name="MailboxCreateInput")
class MailboxCreateRequest:
    username: str = strawberry.field(description="The local part; `user` of `user@domain`.")
    password: str = strawberry.field(description="For IMAP, POP3 and SMTP AUTH.")
    domain: str | None = None  # the server's domain when omitted
    display_name: str = ""
    purpose: MailboxPurpose = MailboxPurpose.STANDARD


@strawberry.input(name="DisplayNameInput")
class DisplayNameUpdateRequest:
    display_name: str


@strawberry.input(
    name="MailboxPasswordInput",
    description="The password IMAP, POP3 and SMTP AUTH take for the mailbox.",
)
class MailboxPasswordRequest:
    password: str


@strawberry.input(name="SignatureInput")
class SignatureUpdateRequest:
    signature: str = ""


@strawberry.type(
    name="MailboxRetention",
    description="A mailbox's retention: its own limits and the ones enforced. Both count "
    "every folder; age is from when a message was received (its internal date).",
)
class MailboxRetention:
    address: str
    # The mailbox's own limits: null follows the server-wide setting, 0 is no limit here.
    max_messages: int | None
    max_age_days: int | None
    effective_max_messages: int = strawberry.field(
        description="The limit enforced: the own one, else the server's; 0 is no limit."
    )
    effective_max_age_days: int = strawberry.field(
        description="Days mail is kept: the own limit, else the server's; 0 keeps it forever."
    )


@strawberry.input(name="MailboxRetentionInput")
class MailboxRetentionRequest:
    # null follows the server-wide setting, 0 is no limit for this mailbox.
    max_messages: int | None = None
    max_age_days: int | None = None
