"""/api/v1/emails/send: compose a message and submit it over SMTP."""

from fastapi import APIRouter, status

from mailcue_server.resolvers import sending
from mailcue_server.rest_compat.deps import Ctx
from mailcue_server.rest_compat.error_responses import errors
from mailcue_server.schema.types.sending import SendEmailRequest, SendEmailResponse

router = APIRouter(prefix="/emails", tags=["Emails"])


@router.post(
    "/send",
    response_model=SendEmailResponse,
    status_code=status.HTTP_202_ACCEPTED,
    responses=errors(404, 502, 504),
)
async def send_new_email(ctx: Ctx, body: SendEmailRequest) -> SendEmailResponse:
    """Send an email through this server's SMTP submission listener.

    The sender address (``from_address``) must be a mailbox of the
    authenticated user (admins may send from any address). A copy is kept,
    read, in the sender's Sent folder.
    """
    return await sending.send_email(ctx, body)
