"""Root field for sending mail (the twin of ``POST /api/v1/emails/send``)."""

from __future__ import annotations

from typing import Annotated

import strawberry

from mailcue_server.resolvers import sending
from mailcue_server.schema.context import Info
from mailcue_server.schema.errors import attempt
from mailcue_server.schema.types.common import OperationError
from mailcue_server.schema.types.sending import SendEmailRequest, SendEmailResponse

SendEmailResult = Annotated[
    SendEmailResponse | OperationError, strawberry.union("SendEmailResult")
]


@strawberry.type
class SendingMutation:
    @strawberry.mutation(description="Compose a message and submit it over SMTP.")
    async def send_email(self, info: Info, input: SendEmailRequest) -> SendEmailResult:
        return await attempt(sending.send_email(info.context.ctx, input))
