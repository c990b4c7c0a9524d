"""The outbound queue as admins see it: list, inspect, download, retry now, delete.

These act from outside a worker's claim (``store/outbound.py``), so a change
first checks that no worker holds a live lease on the message: one a worker
is delivering right now is refused with a Conflict, not raced.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import NoReturn

from tortoise.expressions import Q
from tortoise.queryset import QuerySet

from mailcue_server.errors import Conflict, NotFound
from mailcue_server.store.outbound import RecipientReport, recipient_report, recipients_of
from mailcue_server.store.outbound_models import OutboundMessage, OutboundRecipient, QueueState


def _utcnow() -> datetime:
    """For ``updated_at``: queryset updates do not apply Tortoise's ``auto_now``."""
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class QueueEntry:
    """A queued message as admins see it (without its bytes)."""

    id: int
    mail_from: str
    size: int
    state: str
    attempts: int
    next_attempt_at: datetime
    last_error: str
    created_at: datetime
    updated_at: datetime
    recipients: tuple[RecipientReport, ...] = ()
    # A worker is delivering it while this lies in the future.
    lease_until: datetime | None = None


_ENTRY_FIELDS = (
    "id",
    "mail_from",
    "size",
    "state",
    "attempts",
    "next_attempt_at",
    "last_error",
    "created_at",
    "updated_at",
    "lease_until",
)


async def list_entries(
    *, state: str | None = None, offset: int = 0, limit: int = 50
) -> tuple[int, list[QueueEntry]]:
    """A page of the queue, newest first, each entry with its recipients; returns (total, page)."""
    query = OutboundMessage.all()
    if state:
        query = query.filter(state=state)
    total = await query.count()
    rows = await query.order_by("-id").offset(offset).limit(limit).only(*_ENTRY_FIELDS)
    recipients: dict[int, list[RecipientReport]] = {}
    if rows:
        found = await OutboundRecipient.filter(message_id__in=[row.id for row in rows]).order_by(
            "id"
        )
        for recipient in found:
            recipients.setdefault(recipient.message_id, []).append(recipient_report(recipient))
    return total, [_entry(row, tuple(recipients.get(row.id, ()))) for row in rows]


async def get_entry(message_id: int) -> QueueEntry:
    """One queued message with every recipient's outcome.

    Raises:
        NotFound: No such queue id.
    """
    row = await OutboundMessage.filter(id=message_id).only(*_ENTRY_FIELDS).first()
    if row is None:
        raise NotFound(f"Queued message {message_id} not found")
    return _entry(row, tuple(await recipients_of(message_id)))


async def raw_bytes(message_id: int) -> bytes:
    """The exact bytes of a queued message.

    Raises:
        NotFound: No such queue id.
    """
    found = await OutboundMessage.filter(id=message_id).values_list("raw_bytes", flat=True)
    if not found:
        raise NotFound(f"Queued message {message_id} not found")
    return bytes(found[0])


async def retry_now(message_id: int, now: datetime) -> None:
    """Make a queued message due at once (an admin who fixed the cause).

    Raises:
        NotFound: No such queue id.
        Conflict: The message is closed (delivered or bounced), or a worker is
            delivering it right now (its outcome would overwrite the new schedule).
    """
    changed = await (
        _idle(message_id, now)
        .filter(state=QueueState.QUEUED)
        .update(next_attempt_at=now, updated_at=_utcnow())
    )
    if not changed:
        await _refuse(message_id, "retry")


async def delete_entry(message_id: int, now: datetime | None = None) -> None:
    """Drop a message from the queue (delivered or not), no bounce.

    Raises:
        NotFound: No such queue id.
        Conflict: A worker is delivering it right now (the remote side may get it
            anyway); it can be deleted once the attempt is over.
    """
    now = now or _utcnow()
    if not await _idle(message_id, now).delete():
        await _refuse(message_id, "delete")


def _idle(message_id: int, now: datetime) -> QuerySet[OutboundMessage]:
    """The message, if no worker holds a live claim on it."""
    return OutboundMessage.filter(id=message_id).filter(
        Q(lease_until__isnull=True) | Q(lease_until__lte=now)
    )


_CLOSED = {
    QueueState.DELIVERED: "was already delivered",
    QueueState.FAILED: "has already bounced",
    QueueState.PARTIAL: "is already closed (delivered in part, bounced for the rest)",
}


async def _refuse(message_id: int, action: str) -> NoReturn:
    """Why an admin action found nothing to change: no such message, closed, or in flight."""
    row = await OutboundMessage.filter(id=message_id).only("id", "state", "lease_until").first()
    if row is None:
        raise NotFound(f"Queued message {message_id} not found")
    closed = _CLOSED.get(QueueState(row.state)) if action == "retry" else None
    if closed is not None:
        raise Conflict(f"Queued message {message_id} {closed}: there is nothing to retry")
    raise Conflict(
        f"Queued message {message_id} is being delivered right now; "
        f"{action} it once this attempt is over"
    )


def _entry(row: OutboundMessage, recipients: tuple[RecipientReport, ...] = ()) -> QueueEntry:
    return QueueEntry(
        id=row.id,
        mail_from=row.mail_from,
        size=row.size,
        state=row.state,
        attempts=row.attempts,
        next_attempt_at=row.next_attempt_at,
        last_error=row.last_error,
        created_at=row.created_at,
        updated_at=row.updated_at,
        recipients=recipients,
        lease_until=row.lease_until,
    )
