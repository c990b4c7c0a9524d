"""Root fields for the outbound delivery queue (admin only)."""

from __future__ import annotations

from typing import Annotated

import strawberry

from mailcue_server.resolvers import outbound_queue
from mailcue_server.schema.auth import DoneResult
from mailcue_server.schema.context import Info
from mailcue_server.schema.emails import as_download
from mailcue_server.schema.errors import attempt, attempt_done, query
from mailcue_server.schema.types.common import OperationError
from mailcue_server.schema.types.emails import Download
from mailcue_server.schema.types.outbound_queue import (
    OutboundQueueEntry,
    OutboundQueueListResponse,
    OutboundQueuePurgeResponse,
    OutboundQueueState,
)

QueueEntryResult = Annotated[
    OutboundQueueEntry | OperationError, strawberry.union("OutboundQueueEntryResult")
]
QueuePurgeResult = Annotated[
    OutboundQueuePurgeResponse | OperationError, strawberry.union("OutboundQueuePurgeResult")
]


@strawberry.type
class OutboundQueueQuery:
    @strawberry.field(description="One page of the outbound queue, newest first. Admin only.")
    async def outbound_queue(
        self,
        info: Info,
        state: OutboundQueueState | None = None,
        page: int = 1,
        page_size: int = 50,
    ) -> OutboundQueueListResponse:
        wanted = state.value if state is not None else None
        return await query(
            outbound_queue.list_queue(
                info.context.ctx, state=wanted, page=page, page_size=page_size
            )
        )

    @strawberry.field(description="One queued message with each recipient's last answer.")
    async def outbound_queue_entry(self, info: Info, id: int) -> OutboundQueueEntry:
        return await query(outbound_queue.get_queue_entry(info.context.ctx, id))

    @strawberry.field(description="The exact bytes of a queued message, base64-encoded.")
    async def outbound_queue_entry_raw(self, info: Info, id: int) -> Download:
        return as_download(await query(outbound_queue.raw_queue_entry(info.context.ctx, id)))


@strawberry.type
class OutboundQueueMutation:
    @strawberry.mutation(
        description="Try a deferred message again now; CONFLICT once delivered or bounced."
    )
    async def retry_outbound_queue_entry(self, info: Info, id: int) -> QueueEntryResult:
        return await attempt(outbound_queue.retry_queue_entry(info.context.ctx, id))

    @strawberry.mutation(description="Cancel a queued message (no bounce).")
    async def delete_outbound_queue_entry(self, info: Info, id: int) -> DoneResult:
        return await attempt_done(
            outbound_queue.delete_queue_entry(info.context.ctx, id), "Queued message deleted"
        )

    @strawberry.mutation(description="Remove every delivered or bounced message from the queue.")
    async def purge_outbound_queue(self, info: Info) -> QueuePurgeResult:
        return await attempt(outbound_queue.purge_queue(info.context.ctx))
