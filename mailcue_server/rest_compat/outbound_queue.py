"""/api/v1/system/queue: the outbound delivery queue (admin only; our extension of the API).

Closed messages are purged with ``POST /system/queue/purge``, like the
reference's ``POST /mailboxes/{address}/purge``.
"""

from typing import Annotated

from fastapi import APIRouter, Path, Query, status
from fastapi.responses import Response

from mailcue_server.resolvers import outbound_queue
from mailcue_server.rest_compat.deps import Ctx
from mailcue_server.rest_compat.emails import download
from mailcue_server.rest_compat.error_responses import errors
from mailcue_server.schema.types.outbound_queue import (
    OutboundQueueEntry,
    OutboundQueueListResponse,
    OutboundQueuePurgeResponse,
)

router = APIRouter(prefix="/system/queue", tags=["Outbound queue"])

# Queue ids are 64-bit integers in the database; a larger number is simply unknown.
QueueId = Annotated[int, Path(ge=1, le=2**63 - 1)]


@router.get("", response_model=OutboundQueueListResponse)
async def list_queue(
    ctx: Ctx,
    state: Annotated[
        str | None, Query(description="queued, delivered, failed or partial; all if omitted.")
    ] = None,
    page: int = 1,
    page_size: int = 50,
) -> OutboundQueueListResponse:
    """One page of the outbound queue, newest first. **Admin only.**"""
    return await outbound_queue.list_queue(ctx, state=state, page=page, page_size=page_size)


@router.post("/purge", response_model=OutboundQueuePurgeResponse)
async def purge_queue(ctx: Ctx) -> OutboundQueuePurgeResponse:
    """Remove every closed message (delivered or bounced); queued ones stay. **Admin only.**"""
    return await outbound_queue.purge_queue(ctx)


@router.get("/{entry_id}", response_model=OutboundQueueEntry)
async def get_queue_entry(ctx: Ctx, entry_id: QueueId) -> OutboundQueueEntry:
    """One queued message with each recipient's last answer. **Admin only.**"""
    return await outbound_queue.get_queue_entry(ctx, entry_id)


@router.get(
    "/{entry_id}/raw",
    response_class=Response,
    responses={200: {"content": {"message/rfc822": {}}, "description": "The .eml file."}},
)
async def raw_queue_entry(ctx: Ctx, entry_id: QueueId) -> Response:
    """The exact bytes that are sent, as `queued-<id>.eml`. **Admin only.**"""
    return download(await outbound_queue.raw_queue_entry(ctx, entry_id))


@router.post("/{entry_id}/retry", response_model=OutboundQueueEntry, responses=errors(409))
async def retry_queue_entry(ctx: Ctx, entry_id: QueueId) -> OutboundQueueEntry:
    """Try a deferred message again now: 409 once it is delivered or bounced. **Admin only.**"""
    return await outbound_queue.retry_queue_entry(ctx, entry_id)


@router.delete("/{entry_id}", status_code=status.HTTP_204_NO_CONTENT, responses=errors(409))
async def delete_queue_entry(ctx: Ctx, entry_id: QueueId) -> None:
    """Cancel a message (no bounce): 409 while a worker is delivering it. **Admin only.**"""
    await outbound_queue.delete_queue_entry(ctx, entry_id)
