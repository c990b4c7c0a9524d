"""The outbound queue as admins see it: messages waiting to leave and each recipient's fate."""

from __future__ import annotations

import dataclasses
from datetime import datetime
from enum import Enum

import strawberry


@strawberry.enum(name="OutboundQueueState")
class OutboundQueueState(Enum):
    """Where a queued message stands as a whole."""

    QUEUED = "queued"  # some recipient is still pending
    DELIVERED = "delivered"  # every recipient was delivered
    FAILED = "failed"  # every recipient failed (bounced)
    PARTIAL = "partial"  # some delivered, the others bounced


@strawberry.enum(name="OutboundRecipientState")
class OutboundRecipientState(Enum):
    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"


@strawberry.type(name="OutboundQueueRecipient", description="One envelope recipient and its fate.")
class OutboundQueueRecipient:
    address: str
    state: OutboundRecipientState
    attempts: int
    # The last answer of the recipient's domain (None until one came).
    smtp_code: int | None = None
    enhanced_status: str | None = None  # RFC 3463, e.g. "4.2.2"
    diagnostic: str | None = None  # the reply text, or why no reply came
    remote_host: str | None = None  # the MX or relay that gave it
    last_attempt_at: datetime | None = None
    # When this failed recipient was bounced: right after the attempt it failed in
    # (also set, though no DSN went out, when its NOTIFY asked for none). None before.
    bounced_at: datetime | None = None
    original_recipient: str | None = None  # RFC 3461 ORCPT of the submission


@strawberry.type(name="OutboundQueueEntry", description="A message on its way out.")
class OutboundQueueEntry:
    id: int
    sender: str = strawberry.field(
        description="The envelope sender; empty for the null sender <> (bounces)."
    )
    state: OutboundQueueState
    attempts: int
    size: int
    created_at: datetime
    updated_at: datetime
    delivering: bool = strawberry.field(description="A worker is delivering it right now.")
    # When the next attempt is due; None once the message is closed. (No strawberry.field:
    # it would hide the optional type from pydantic.)
    next_attempt_at: datetime | None
    last_error: str | None = None
    # dataclasses.field: strawberry.field would hide the list type from pydantic.
    recipients: list[OutboundQueueRecipient] = dataclasses.field(default_factory=list)


@strawberry.type(name="OutboundQueuePage")
class OutboundQueueListResponse:
    entries: list[OutboundQueueEntry]
    total: int
    page: int
    page_size: int
    has_more: bool = False


@strawberry.type(name="OutboundQueuePurge", description="How many closed messages were removed.")
class OutboundQueuePurgeResponse:
    purged: int
