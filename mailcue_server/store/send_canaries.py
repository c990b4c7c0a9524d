"""Queries on staged sends (send canaries) and their recipients.

State changes that lead to mail are conditional updates (``WHERE status = ...``):
of two nodes, or two requests, that try to release the same canary or send to
the same recipient, exactly one sees its update count 1 and goes on; the
other leaves it alone. A crash between the claim and the send loses that
message rather than sending it twice.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from tortoise.transactions import in_transaction

from mailcue_server.errors import NotFound
from mailcue_server.store.deliverability_models import (
    CanaryStatus,
    RecipientStatus,
    SendCanary,
    SendCanaryRecipient,
)
from mailcue_server.store.ids import uuid_or_none

UserId = UUID | str
# Recipients whose mail went out and may still bounce.
OPEN_STATES = (
    RecipientStatus.SENT.value,
    RecipientStatus.RELEASED.value,
    RecipientStatus.DELIVERED.value,
    RecipientStatus.SOFT_BOUNCE.value,
)


@dataclass(frozen=True)
class NewRecipient:
    email: str
    domain: str
    role: str
    status: str
    risk_score: float | None


async def create(
    user_id: UserId, recipients: Sequence[NewRecipient], now: datetime, **fields: Any
) -> SendCanary:
    """A canary and its recipients, in one transaction."""
    async with in_transaction():
        canary = await SendCanary.create(
            id=uuid.uuid4(), user_id=user_id, created_at=now, **fields
        )
        await SendCanaryRecipient.bulk_create(
            SendCanaryRecipient(
                canary_id=canary.id,
                position=index,
                email=r.email,
                domain=r.domain,
                role=r.role,
                status=r.status,
                risk_score=r.risk_score,
            )
            for index, r in enumerate(recipients)
        )
    return canary


async def get(canary_id: str, user_id: UserId) -> SendCanary:
    """The user's canary; another user's, or a malformed id, is not found alike."""
    key = uuid_or_none(canary_id)
    canary = None if key is None else await SendCanary.get_or_none(id=key, user_id=user_id)
    if canary is None:
        raise NotFound(f"Send canary '{canary_id}' not found")
    return canary


async def reload(canary_id: UUID) -> SendCanary:
    return await SendCanary.get(id=canary_id)


async def list_for_user(user_id: UserId, limit: int) -> tuple[list[SendCanary], int]:
    """The user's newest canaries and how many they have in all."""
    query = SendCanary.filter(user_id=user_id)
    total = await query.count()
    rows = await query.order_by("-created_at").limit(limit)
    return list(rows), total


async def recipients_of(canary_ids: Iterable[UUID]) -> dict[UUID, list[SendCanaryRecipient]]:
    ids = list(canary_ids)
    found: dict[UUID, list[SendCanaryRecipient]] = {i: [] for i in ids}
    if not ids:
        return found
    rows = await SendCanaryRecipient.filter(canary_id__in=ids).order_by("canary_id", "position")
    for row in rows:
        found[UUID(str(row.canary_id))].append(row)
    return found


async def transition(canary_id: UUID, from_states: Sequence[str], **fields: Any) -> bool:
    """Change the canary if it is in one of ``from_states``; whether this call did it."""
    updated = await SendCanary.filter(id=canary_id, status__in=list(from_states)).update(**fields)
    return updated == 1


async def claim_recipient(recipient_id: int, from_state: str, **fields: Any) -> bool:
    """Move one recipient on from ``from_state``; whether this call did it."""
    updated = await SendCanaryRecipient.filter(id=recipient_id, status=from_state).update(**fields)
    return updated == 1


async def update_recipient(recipient_id: int, **fields: Any) -> None:
    await SendCanaryRecipient.filter(id=recipient_id).update(**fields)


async def mark_held(canary_id: UUID, domains: Iterable[str], status: str, now: datetime) -> None:
    """Held recipients still pending at ``domains`` become ``status`` (blocked, skipped)."""
    wanted = list(domains)
    if not wanted:
        return
    await SendCanaryRecipient.filter(
        canary_id=canary_id,
        role="held",
        status=RecipientStatus.PENDING.value,
        domain__in=wanted,
    ).update(status=status, resolved_at=now)


async def skip_pending(canary_id: UUID, now: datetime) -> None:
    await SendCanaryRecipient.filter(
        canary_id=canary_id, status=RecipientStatus.PENDING.value
    ).update(status=RecipientStatus.SKIPPED.value, resolved_at=now)


async def record_outcome(
    user_id: UserId,
    address: str,
    *,
    status: str,
    smtp_code: int | None,
    enhanced_status: str | None,
    now: datetime,
) -> None:
    """An outcome reported for ``address`` updates its open recipients in the user's canaries."""
    open_canaries = SendCanary.filter(
        user_id=user_id,
        status__in=[
            CanaryStatus.PROBING.value,
            CanaryStatus.RELEASED.value,
            CanaryStatus.BLOCKED.value,
        ],
    ).values_list("id", flat=True)
    ids = list(await open_canaries)
    if not ids:
        return
    await SendCanaryRecipient.filter(
        canary_id__in=ids, email__iexact=address, status__in=list(OPEN_STATES)
    ).update(status=status, smtp_code=smtp_code, enhanced_status=enhanced_status, resolved_at=now)


async def due(now: datetime) -> list[SendCanary]:
    """Probing canaries set to release on their own whose hold window has ended."""
    return list(
        await SendCanary.filter(
            status=CanaryStatus.PROBING.value, auto_release=True, decision_due_at__lte=now
        ).order_by("decision_due_at")
    )
