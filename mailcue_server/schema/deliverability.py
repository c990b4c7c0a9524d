"""Root fields for batch validation, delivery feedback, bounces, calibration and suppressions."""

from __future__ import annotations

from typing import Annotated

import strawberry

from mailcue_server.resolvers import deliverability, validation_batch
from mailcue_server.schema.context import Info
from mailcue_server.schema.errors import attempt, query
from mailcue_server.schema.types.common import OperationError
from mailcue_server.schema.types.deliverability import (
    DomainSuppressionListResponse,
    EmailBounceIngestRequest,
    EmailBounceIngestResponse,
    EmailValidationCalibrationResponse,
    EmailValidationFeedbackRequest,
    EmailValidationFeedbackResponse,
)
from mailcue_server.schema.types.validation_batch import (
    EmailValidationBatchRequest,
    EmailValidationBatchResponse,
)

FeedbackResult = Annotated[
    EmailValidationFeedbackResponse | OperationError,
    strawberry.union("ValidationFeedbackResult"),
]
BounceIngestResult = Annotated[
    EmailBounceIngestResponse | OperationError, strawberry.union("BounceIngestResult")
]


@strawberry.type
class DeliverabilityQuery:
    @strawberry.field(
        description="Check several addresses together: each as validateEmail does, plus a "
        "hard-bounce risk from your recorded outcomes and the batch's evidence, and with "
        "targetBounceRate the largest subset that fits it. API keys need email:read."
    )
    async def validate_email_batch(
        self, info: Info, input: EmailValidationBatchRequest
    ) -> EmailValidationBatchResponse:
        return await query(validation_batch.validate_batch(info.context.ctx, input))

    @strawberry.field(
        description="How issued risk scores matched the outcomes that followed, over the "
        "last `days` (1 to 365); `scope` tenant (yours) or global (everyone's, admins only)."
    )
    async def validation_calibration(
        self, info: Info, days: int = 90, scope: str = "tenant"
    ) -> EmailValidationCalibrationResponse:
        return await query(
            deliverability.validation_calibration(info.context.ctx, days=days, scope=scope)
        )

    @strawberry.field(
        description="Your recipient domains paused after their hard-bounce rate crossed the limit."
    )
    async def suppressed_domains(self, info: Info) -> DomainSuppressionListResponse:
        return await query(deliverability.suppressed_domains(info.context.ctx))


@strawberry.type
class DeliverabilityMutation:
    @strawberry.mutation(
        description="Record what real mail to an address did (delivered, hard or soft "
        "bounce). API keys need email:write."
    )
    async def record_validation_feedback(
        self, info: Info, input: EmailValidationFeedbackRequest
    ) -> FeedbackResult:
        return await attempt(deliverability.record_feedback(info.context.ctx, input))

    @strawberry.mutation(
        description="Read a delivery status notification (RFC 3464) and record each "
        "recipient's outcome. API keys need email:write."
    )
    async def ingest_bounce(
        self, info: Info, input: EmailBounceIngestRequest
    ) -> BounceIngestResult:
        return await attempt(deliverability.ingest_bounce(info.context.ctx, input))
