"""/api/v1/emails/send-canaries: staged sends that prove each domain with a sample first."""

from typing import Annotated

from fastapi import APIRouter, Query, status

from mailcue_server.resolvers import send_canaries
from mailcue_server.rest_compat.deps import Ctx
from mailcue_server.rest_compat.error_responses import errors
from mailcue_server.schema.types.send_canaries import (
    CreateSendCanaryRequest,
    SendCanaryListResponse,
    SendCanaryResponse,
)

router = APIRouter(prefix="/emails/send-canaries", tags=["Emails"])


@router.post(
    "",
    response_model=SendCanaryResponse,
    status_code=status.HTTP_201_CREATED,
    responses=errors(404, 502, 504),
)
async def create_send_canary(ctx: Ctx, body: CreateSendCanaryRequest) -> SendCanaryResponse:
    """Stage a send so a sample proves each domain before the rest is committed.

    There is no way to recall a message once it leaves the MTA, so the only
    control available is how much of the batch is committed at once. The sample
    (`sample_size` recipients per domain) is sent now, one message per
    recipient; recipients at suppressed domains, or whose address hard-bounced
    before, are skipped. API keys need `email:send`.
    """
    return await send_canaries.create_send_canary(ctx, body)


@router.get("", response_model=SendCanaryListResponse)
async def list_send_canaries(
    ctx: Ctx, limit: Annotated[int, Query(ge=1, le=100)] = 25
) -> SendCanaryListResponse:
    """List staged sends for the calling tenant, newest first."""
    return await send_canaries.list_send_canaries(ctx, limit)


@router.get("/{canary_id}", response_model=SendCanaryResponse)
async def get_send_canary(ctx: Ctx, canary_id: str) -> SendCanaryResponse:
    """Return the state of one staged send."""
    return await send_canaries.get_send_canary(ctx, canary_id)


@router.post(
    "/{canary_id}/decide", response_model=SendCanaryResponse, responses=errors(409, 502, 504)
)
async def decide_send_canary(ctx: Ctx, canary_id: str) -> SendCanaryResponse:
    """Resolve a staged send now instead of waiting for its hold window.

    Domains whose sample hard-bounced more than `bounce_threshold` (or that are
    suppressed) are blocked; the held recipients of the others are sent. A send
    that is decided or cancelled already answers 409.
    """
    return await send_canaries.decide_send_canary(ctx, canary_id)


@router.post("/{canary_id}/cancel", response_model=SendCanaryResponse, responses=errors(409))
async def cancel_send_canary(ctx: Ctx, canary_id: str) -> SendCanaryResponse:
    """Cancel a staged send before its remaining recipients go out (409 once decided)."""
    return await send_canaries.cancel_send_canary(ctx, canary_id)
