"""Root field for address validation."""

from __future__ import annotations

import strawberry

from mailcue_server.resolvers import validation
from mailcue_server.schema.context import Info
from mailcue_server.schema.errors import query
from mailcue_server.schema.types.validation import EmailValidationResponse


@strawberry.type
class ValidationQuery:
    @strawberry.field(
        description="Check an address: syntax, the domain's DNS, an SMTP RCPT probe "
        "(never DATA) and the disposable-domain list. API keys need email:read."
    )
    async def validate_email(self, info: Info, email: str) -> EmailValidationResponse:
        return await query(validation.validate_email(info.context.ctx, email))
