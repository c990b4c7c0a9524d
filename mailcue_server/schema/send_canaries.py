"""Root fields for staged sends (the twins of ``/api/v1/emails/send-canaries``)."""

from __future__ import annotations

from typing import Annotated

import strawberry

from mailcue_server.resolvers import send_canaries
from mailcue_server.schema.context import Info
from mailcue_server.schema.errors import attempt, query
from mailcue_server.schema.types.common import OperationError
from mailcue_server.schema.types.send_canaries import (
    CreateSendCanaryRequest,
    SendCanaryListResponse,
    SendCanaryResponse,
)

SendCanaryResult = Annotated[
    SendCanaryResponse | OperationError, strawberry.union("SendCanaryResult")
]


@strawberry.type
class SendCanaryQuery:
    @strawberry.field(description="Your staged sends, newest first (`limit` 1 to 100).")
    async def send_canaries(self, info: Info, limit: int = 25) -> SendCanaryListResponse:
        return await query(send_canaries.list_send_canaries(info.context.ctx, limit))

    @strawberry.field(description="One of your staged sends, with every recipient.")
    async def send_canary(self, info: Info, id: str) -> SendCanaryResponse:
        return await query(send_canaries.get_send_canary(info.context.ctx, id))


@strawberry.type
class SendCanaryMutation:
    @strawberry.mutation(
        description="Stage a send: the sample per domain goes now, the rest once the sample "
        "proved its domain. API keys need email:send."
    )
    async def create_send_canary(
        self, info: Info, input: CreateSendCanaryRequest
    ) -> SendCanaryResult:
        return await attempt(send_canaries.create_send_canary(info.context.ctx, input))

    @strawberry.mutation(description="Decide a staged send now instead of after its hold.")
    async def decide_send_canary(self, info: Info, id: str) -> SendCanaryResult:
        return await attempt(send_canaries.decide_send_canary(info.context.ctx, id))

    @strawberry.mutation(description="Cancel a staged send before its held recipients go out.")
    async def cancel_send_canary(self, info: Info, id: str) -> SendCanaryResult:
        return await attempt(send_canaries.cancel_send_canary(info.context.ctx, id))
