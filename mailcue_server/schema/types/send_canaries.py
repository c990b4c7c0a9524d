"""Staged sends (send canaries): the request, one recipient's state, the send's state.

Class names are the REST contract's schema names. Plain defaults in the input,
not ``strawberry.field``: that would hide the field types from pydantic.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime
from enum import Enum
from typing import Annotated

import strawberry
from pydantic import Field

MAX_RECIPIENTS = 1000
MAX_SAMPLE_SIZE = 50
MAX_HOLD_MINUTES = 10080  # a week


@strawberry.enum(name="SendCanaryStatus")
class CanaryStatus(Enum):
    PENDING = "pending"
    PROBING = "probing"
    RELEASED = "released"
    BLOCKED = "blocked"
    CANCELLED = "cancelled"
    FAILED = "failed"


@strawberry.enum(name="SendCanaryRole")
class CanaryRole(Enum):
    SAMPLE = "sample"
    HELD = "held"


@strawberry.enum(name="SendCanaryRecipientStatus")
class CanaryRecipientStatus(Enum):
    PENDING = "pending"
    SENT = "sent"
    DELIVERED = "delivered"
    HARD_BOUNCE = "hard_bounce"
    SOFT_BOUNCE = "soft_bounce"
    RELEASED = "released"
    BLOCKED = "blocked"
    SKIPPED = "skipped"


@strawberry.enum(name="BodyType")
class BodyType(Enum):
    PLAIN = "plain"
    HTML = "html"


@strawberry.input(
    name="CreateSendCanaryInput",
    description="A message for many recipients (up to 1,000), sent in stages: first "
    "`sampleSize` recipients per domain (1 to 50, default 5), then, after `holdMinutes` "
    "(1 to 10080, default 60) or a decision, the rest at each domain whose sample "
    "hard-bounced at most `bounceThreshold` (0 to 1). With `autoRelease` false the rest "
    "waits for an explicit decision.",
)
class CreateSendCanaryRequest:
    recipients: Annotated[list[str], Field(min_length=1)]
    from_address: str
    subject: str
    body: str = ""
    name: Annotated[str, Field(max_length=200)] = ""
    from_name: Annotated[str, Field(max_length=200)] = ""
    body_type: BodyType = BodyType.PLAIN
    reply_to: str | None = None
    sample_size: Annotated[int | None, Field(ge=1, le=MAX_SAMPLE_SIZE)] = None
    hold_minutes: Annotated[int | None, Field(ge=1, le=MAX_HOLD_MINUTES)] = None
    bounce_threshold: Annotated[float, Field(ge=0, le=1)] = 0.0
    auto_release: bool = True


@strawberry.type(
    name="SendCanaryRecipient",
    description="`role` sample went first; held waits for the decision. `status`: "
    "pending, sent, delivered / hard_bounce / soft_bounce (an outcome reported since), "
    "released (a held recipient sent), blocked (held back by the decision) or skipped "
    "(not sent: suppressed, cancelled or refused).",
)
class SendCanaryRecipient:
    email: str
    role: CanaryRole
    status: CanaryRecipientStatus
    risk_score: float | None = None
    smtp_code: int | None = None
    enhanced_status: str | None = None
    sent_at: datetime | None = None
    resolved_at: datetime | None = None


@strawberry.type(name="SendCanary", description="A staged send and where its decision stands.")
class SendCanaryResponse:
    id: str
    name: str
    status: CanaryStatus
    sample_size: int
    hold_minutes: int
    bounce_threshold: float
    auto_release: bool
    from_address: str
    subject: str
    created_at: datetime
    total_recipients: int
    sample_recipients: int
    held_recipients: int
    hard_bounces: int
    soft_bounces: int
    sample_sent_at: datetime | None = None
    decision_due_at: datetime | None = None
    decided_at: datetime | None = None
    decision_reason: str | None = None
    recipients: list[SendCanaryRecipient] = dataclasses.field(default_factory=list)


@strawberry.type(name="SendCanaryList")
class SendCanaryListResponse:
    canaries: list[SendCanaryResponse]
    total: int
