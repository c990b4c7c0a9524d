"""Delivery history: feedback, ingested bounces, calibration figures, suppressed domains.

Class names are the REST contract's schema names; GraphQL gets its own.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime
from enum import Enum
from typing import Annotated

import strawberry
from pydantic import Field

from mailcue_server.schema.types.validation import MAX_ADDRESS_LENGTH

MAX_BOUNCE_MESSAGE = 2_000_000


@strawberry.enum(name="DeliveryOutcome", description="What mail to an address did.")
class DeliveryOutcomeKind(Enum):
    DELIVERED = "delivered"
    HARD_BOUNCE = "hard_bounce"
    SOFT_BOUNCE = "soft_bounce"


@strawberry.input(
    name="ValidationFeedbackInput",
    description="An outcome of real mail to an address: it joins the domain's measured "
    "bounce rate (risk scores, suppression) and the calibration figures. `smtpCode` is "
    "100 to 599, `enhancedStatus` an RFC 3463 code such as 5.1.1.",
)
class EmailValidationFeedbackRequest:
    email: Annotated[str, Field(min_length=1, max_length=MAX_ADDRESS_LENGTH)]
    outcome: DeliveryOutcomeKind
    smtp_code: Annotated[int | None, Field(ge=100, le=599)] = None
    enhanced_status: Annotated[str | None, Field(max_length=16)] = None


@strawberry.type(name="ValidationFeedback")
class EmailValidationFeedbackResponse:
    recorded: bool
    outcome: DeliveryOutcomeKind


@strawberry.type(name="CalibrationBin", description="One bucket of the reliability table.")
class EmailValidationCalibrationBin:
    lower: float
    upper: float
    count: int
    predicted_mean: float
    observed_rate: float


@strawberry.type(
    name="ValidationCalibration",
    description="How issued risk scores compared with the hard bounces that followed: the "
    "Brier score (0 is perfect) and, per tenth of the score range, the mean score against "
    "the observed rate. Only outcomes of addresses that had been scored count; soft "
    "bounces do not.",
)
class EmailValidationCalibrationResponse:
    sample_size: int
    brier_score: float | None = None
    mean_predicted: float | None = None
    observed_rate: float | None = None
    bins: list[EmailValidationCalibrationBin] = dataclasses.field(default_factory=list)


@strawberry.input(
    name="BounceIngestInput",
    description="A delivery status notification (RFC 3464) as raw message text.",
)
class EmailBounceIngestRequest:
    raw_message: Annotated[str, Field(min_length=1, max_length=MAX_BOUNCE_MESSAGE)]


@strawberry.type(name="BounceRecipient")
class EmailBounceIngestRecipient:
    recipient: str
    outcome: DeliveryOutcomeKind
    status: str | None = None
    smtp_code: int | None = None
    diagnostic_code: str | None = None


@strawberry.type(
    name="BounceIngest",
    description="What a notification reported; `recorded` outcomes joined the history.",
)
class EmailBounceIngestResponse:
    is_dsn: bool
    recorded: int
    recipients: list[EmailBounceIngestRecipient] = dataclasses.field(default_factory=list)


@strawberry.type(
    name="DomainSuppression",
    description="A recipient domain your staged sends skip until `expiresAt`, paused "
    "because its measured hard-bounce rate crossed the limit.",
)
class DomainSuppressionEntry:
    domain: str
    reason: str
    hard_bounces: int
    observations: int
    created_at: datetime
    expires_at: datetime | None = None


@strawberry.type(name="DomainSuppressionList")
class DomainSuppressionListResponse:
    suppressions: list[DomainSuppressionEntry]
    total: int
