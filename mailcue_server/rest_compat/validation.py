"""/api/v1/emails/validate: is this address worth sending to?"""

from fastapi import APIRouter

from mailcue_server.resolvers import validation
from mailcue_server.rest_compat.deps import Ctx
from mailcue_server.schema.types.validation import (
    EmailValidationRequest,
    EmailValidationResponse,
)

router = APIRouter(prefix="/emails", tags=["Emails"])


@router.post("/validate", response_model=EmailValidationResponse)
async def validate_email_endpoint(
    ctx: Ctx, body: EmailValidationRequest
) -> EmailValidationResponse:
    """Validate email address format, DNS domain MX/NS, SMTP availability, and disposable status.

    The SMTP probe stops after RCPT TO (never DATA), so nothing is delivered.
    API keys need the ``email:read`` scope.
    """
    return await validation.validate_email(ctx, body.email)
