"""The outbound queue for admins: list, inspect, download, retry, cancel and purge.

Reading needs ``system:read``, changing ``system:write`` (both admin only).
The queue's admin views and their rules (what may be retried, what a worker
is delivering) live in ``store/outbound_admin.py``; purging uses
``store/outbound.py``'s ``purge_finished``, as the worker's retention does.
"""

from __future__ import annotations

from datetime import datetime

from mailcue_server.errors import Invalid
from mailcue_server.resolvers.context import Context
from mailcue_server.resolvers.emails import FileContent
from mailcue_server.schema.types.outbound_queue import (
    OutboundQueueEntry,
    OutboundQueueListResponse,
    OutboundQueuePurgeResponse,
    OutboundQueueRecipient,
    OutboundQueueState,
    OutboundRecipientState,
)
from mailcue_server.store import outbound, outbound_admin, paging
from mailcue_server.store.outbound import RecipientReport

READ = "system:read"
WRITE = "system:write"
MAX_PAGE_SIZE = 200
STATES = ", ".join(state.value for state in OutboundQueueState)


def _recipient(report: RecipientReport) -> OutboundQueueRecipient:
    return OutboundQueueRecipient(
        address=report.address,
        state=OutboundRecipientState(report.state),
        attempts=report.attempts,
        smtp_code=report.smtp_code or None,
        enhanced_status=report.status or None,
        diagnostic=report.diagnostic or None,
        remote_host=report.remote_host or None,
        last_attempt_at=report.last_attempt_at,
        bounced_at=report.bounced_at,
        original_recipient=report.dsn.orcpt or None,
    )


def _view(entry: outbound_admin.QueueEntry, now: datetime) -> OutboundQueueEntry:
    state = OutboundQueueState(entry.state)
    return OutboundQueueEntry(
        id=entry.id,
        sender=entry.mail_from,
        state=state,
        attempts=entry.attempts,
        size=entry.size,
        created_at=entry.created_at,
        updated_at=entry.updated_at,
        delivering=entry.lease_until is not None and entry.lease_until > now,
        next_attempt_at=entry.next_attempt_at if state is OutboundQueueState.QUEUED else None,
        last_error=entry.last_error or None,
        recipients=[_recipient(report) for report in entry.recipients],
    )


def _state(value: str | None) -> str | None:
    if value is None or value == "":
        return None
    try:
        return OutboundQueueState(value.strip().lower()).value
    except ValueError:
        raise Invalid(f"state must be one of: {STATES}") from None


async def list_queue(
    ctx: Context, *, state: str | None = None, page: int = 1, page_size: int = 50
) -> OutboundQueueListResponse:
    """One page of the queue, newest first, optionally only messages in ``state``.

    Raises:
        Invalid: A page below 1, a page size outside 1..200, or an unknown state.
    """
    ctx.require_principal().require_admin(READ)
    wanted = _state(state)
    if page < 1:
        raise Invalid("page starts at 1")
    if not 1 <= page_size <= MAX_PAGE_SIZE:
        raise Invalid(f"page_size must be between 1 and {MAX_PAGE_SIZE}")
    total, entries = await outbound_admin.list_entries(
        state=wanted, offset=paging.offset_of(page, page_size), limit=page_size
    )
    now = ctx.now()
    return OutboundQueueListResponse(
        entries=[_view(entry, now) for entry in entries],
        total=total,
        page=page,
        page_size=page_size,
        has_more=page * page_size < total,
    )


async def get_queue_entry(ctx: Context, entry_id: int) -> OutboundQueueEntry:
    """One queued message with every recipient's last answer.

    Raises:
        NotFound: No such queue id.
    """
    ctx.require_principal().require_admin(READ)
    return _view(await outbound_admin.get_entry(entry_id), ctx.now())


async def raw_queue_entry(ctx: Context, entry_id: int) -> FileContent:
    """The exact bytes the worker sends (DKIM-signed if they were signed), as a .eml file.

    Raises:
        NotFound: No such queue id.
    """
    ctx.require_principal().require_admin(READ)
    filename = f"queued-{entry_id}.eml"
    return FileContent(
        filename=filename,
        content_type="message/rfc822",
        content_disposition=f'attachment; filename="{filename}"',
        data=await outbound_admin.raw_bytes(entry_id),
    )


async def retry_queue_entry(ctx: Context, entry_id: int) -> OutboundQueueEntry:
    """Make a deferred message due now and wake this node's delivery worker.

    The worker picks it up at once when it runs in this process, otherwise at
    the next poll of whichever node's worker gets it first.

    Raises:
        NotFound: No such queue id.
        Conflict: Already delivered or bounced, or being delivered right now.
    """
    ctx.require_principal().require_admin(WRITE)
    now = ctx.now()
    await outbound_admin.retry_now(entry_id, now)
    entry = await outbound_admin.get_entry(entry_id)
    if ctx.services.wake_outbound is not None:
        ctx.services.wake_outbound()
    return _view(entry, now)


async def delete_queue_entry(ctx: Context, entry_id: int) -> None:
    """Cancel a message: it is removed from the queue and never (re)tried; nothing bounces.

    Raises:
        NotFound: No such queue id.
        Conflict: A worker is delivering it right now.
    """
    ctx.require_principal().require_admin(WRITE)
    await outbound_admin.delete_entry(entry_id, ctx.now())


async def purge_queue(ctx: Context) -> OutboundQueuePurgeResponse:
    """Remove every closed message (delivered, bounced, or partly both); queued ones stay."""
    ctx.require_principal().require_admin(WRITE)
    return OutboundQueuePurgeResponse(purged=await outbound.purge_finished(ctx.now()))
