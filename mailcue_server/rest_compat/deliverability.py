"""/api/v1/emails: batch validation, delivery feedback and bounces, calibration, suppressions."""

from typing import Annotated

from fastapi import APIRouter, Query

from mailcue_server.resolvers import deliverability, validation_batch
from mailcue_server.rest_compat.deps import Ctx
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

router = APIRouter(prefix="/emails", tags=["Emails"])


@router.post("/validate-batch", response_model=EmailValidationBatchResponse)
async def validate_email_batch_endpoint(
    ctx: Ctx, body: EmailValidationBatchRequest
) -> EmailValidationBatchResponse:
    """Validate a list of addresses, using batch-level evidence and a bounce budget.

    Each address gets the single validation (syntax, DNS, SMTP probe, disposable
    list), then a hard-bounce risk from your recorded outcomes and what the batch
    shows about each domain's naming convention. With `target_bounce_rate`,
    `selection` names the largest subset whose mean risk fits under it.
    API keys need `email:read`.
    """
    return await validation_batch.validate_batch(ctx, body)


@router.post("/validation-feedback", response_model=EmailValidationFeedbackResponse)
async def create_email_validation_feedback(
    ctx: Ctx, body: EmailValidationFeedbackRequest
) -> EmailValidationFeedbackResponse:
    """Record an organic delivery result used to calibrate catch-all risk.

    The outcome joins your measured bounce rate of the domain (later risk scores,
    domain suppression), updates the address in your staged sends and counts in
    the calibration figures. API keys need `email:write`.
    """
    return await deliverability.record_feedback(ctx, body)


@router.get("/validation-calibration", response_model=EmailValidationCalibrationResponse)
async def get_validation_calibration(
    ctx: Ctx,
    days: Annotated[int, Query(ge=1, le=365)] = 90,
    scope: Annotated[str, Query(pattern="^(tenant|global)$")] = "tenant",
) -> EmailValidationCalibrationResponse:
    """Report how well issued risk scores matched the outcomes that followed.

    `scope=tenant` is your own history; `global` pools every user's (admins only).
    API keys need `email:read`.
    """
    return await deliverability.validation_calibration(ctx, days=days, scope=scope)


@router.post("/bounces/ingest", response_model=EmailBounceIngestResponse)
async def ingest_bounce(ctx: Ctx, body: EmailBounceIngestRequest) -> EmailBounceIngestResponse:
    """Extract delivery outcomes from a raw notification and record them.

    Each recipient of an RFC 3464 delivery status notification is recorded as
    delivered, hard_bounce or soft_bounce, exactly as feedback is. Another kind
    of message answers `is_dsn: false`. API keys need `email:write`.
    """
    return await deliverability.ingest_bounce(ctx, body)


@router.get("/suppressed-domains", response_model=DomainSuppressionListResponse)
async def list_suppressed_domains(ctx: Ctx) -> DomainSuppressionListResponse:
    """List recipient domains paused after their measured bounce rate crossed the limit.

    API keys need `email:read`.
    """
    return await deliverability.suppressed_domains(ctx)
