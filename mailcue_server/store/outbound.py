"""The outbound queue: durable enqueue, leased claims, per-recipient outcomes, admin views.

How a message moves (the delivery worker is ``workers/outbound/``):

1. :func:`enqueue` commits the message and its recipients before returning,
   so once a caller has the id, a crash loses nothing.
2. :func:`claim_due` hands due messages to one worker: on PostgreSQL the
   candidate rows are locked with ``FOR UPDATE SKIP LOCKED`` so nodes claiming
   at once take different rows; on SQLite (one process) the transaction alone
   serialises claims. The claim is a lease with a token of its own: the worker
   renews it while it works (:func:`renew_leases`) and every later write is
   checked against the token, so a worker whose lease ran out (it hung, or its
   node died and another took over) can no longer change the message.
3. :func:`record` stores each recipient's outcome as soon as its domain has
   answered; :func:`reschedule` puts deferred recipients back in line;
   :func:`finish` closes the message once no recipient is pending.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from tortoise.exceptions import IntegrityError
from tortoise.expressions import F, Q

from mailcue_server.errors import Invalid, NotFound
from mailcue_server.mail.dns_records import domain_name
from mailcue_server.store import uids
from mailcue_server.store.outbound_models import (
    MtaStsPolicyRecord,
    OutboundMessage,
    OutboundRecipient,
    QueueState,
    RecipientState,
)

MAX_RECIPIENTS = 1000
EXPIRED_STATUS = "5.4.7"


def _utcnow() -> datetime:
    """For ``updated_at``: queryset updates do not apply Tortoise's ``auto_now``."""
    return datetime.now(UTC)


class LeaseLost(Exception):
    """The claim ran out and the message may be someone else's now: stop working on it."""


@dataclass(frozen=True, slots=True)
class Claimed:
    """A message a worker now owns until ``lease`` runs out, with its pending recipients."""

    id: int
    token: str
    mail_from: str
    raw: bytes
    attempts: int  # this attempt included
    created_at: datetime
    recipients: tuple[tuple[str, str], ...]  # (address, domain), still pending


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one attempt did for one recipient; ``PENDING`` means deferred (try again)."""

    address: str
    state: RecipientState
    smtp_code: int = 0
    status: str = ""
    diagnostic: str = ""
    remote_host: str = ""


@dataclass(frozen=True, slots=True)
class RecipientReport:
    address: str
    state: str
    attempts: int
    smtp_code: int
    status: str
    diagnostic: str
    remote_host: str
    last_attempt_at: datetime | None


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


def claim_token(owner: str) -> str:
    """A token for one claim: the worker's id plus randomness (fits ``lease_owner``)."""
    return f"{owner[:40]}.{secrets.token_hex(8)}"


async def enqueue(
    raw: bytes, mail_from: str, recipients: Sequence[str], *, now: datetime | None = None
) -> int:
    """Queue a message for delivery; committed when this returns.

    Args:
        raw: The exact bytes to send (already DKIM-signed if it should be).
        mail_from: The envelope sender; ``""`` or ``"<>"`` is the null sender (bounces).
        recipients: Envelope recipients on any domain; duplicates are sent once.
        now: The queueing time (default: the clock); the first attempt is due at once.

    Returns:
        The queue id.

    Raises:
        Invalid: No bytes, no recipients, or a recipient without a usable domain.
    """
    if not raw:
        raise Invalid("The message is empty")
    targets = _targets(recipients)
    sender = mail_from.strip()
    sender = "" if sender == "<>" else sender
    now = now or _utcnow()
    async with uids.write_transaction():
        message = await OutboundMessage.create(
            mail_from=sender,
            raw_bytes=raw,
            size=len(raw),
            next_attempt_at=now,
            created_at=now,
        )
        await OutboundRecipient.bulk_create(
            OutboundRecipient(message_id=message.id, address=address, domain=domain)
            for address, domain in targets
        )
    return int(message.id)


def _targets(recipients: Sequence[str]) -> list[tuple[str, str]]:
    found: dict[str, tuple[str, str]] = {}
    for recipient in recipients:
        address = recipient.strip().strip("<>")
        local, at, domain = address.rpartition("@")
        if not at or not local or any(c.isspace() or c in "<>" for c in address):
            raise Invalid(f"'{recipient}' is not an email address")
        ascii_domain = domain_name(domain)
        found.setdefault(address.lower(), (f"{local}@{domain.lower()}", ascii_domain))
    if not found:
        raise Invalid("The message has no recipients")
    if len(found) > MAX_RECIPIENTS:
        raise Invalid(f"At most {MAX_RECIPIENTS} recipients per queued message")
    return list(found.values())


async def claim_due(owner: str, *, now: datetime, lease: timedelta, limit: int) -> list[Claimed]:
    """Take up to ``limit`` due, unleased messages for worker ``owner``.

    Each claim counts as an attempt (so a message that crashes its worker
    still moves along its retry schedule).
    """
    if limit <= 0:
        return []
    tokens: dict[int, str] = {}
    async with uids.write_transaction() as connection:
        rows = (
            await OutboundMessage.filter(state=QueueState.QUEUED, next_attempt_at__lte=now)
            .filter(Q(lease_until__isnull=True) | Q(lease_until__lte=now))
            .order_by("next_attempt_at", "id")
            .limit(limit)
            .select_for_update(skip_locked=True)  # PostgreSQL; SQLite ignores it
            .only("id")
            .using_db(connection)
        )
        for row in rows:
            token = tokens[row.id] = claim_token(owner)
            await (
                OutboundMessage.filter(id=row.id)
                .using_db(connection)
                .update(lease_owner=token, lease_until=now + lease, attempts=F("attempts") + 1)
            )
    if not tokens:
        return []
    messages = await OutboundMessage.filter(id__in=list(tokens))
    pending = await OutboundRecipient.filter(
        message_id__in=list(tokens), state=RecipientState.PENDING
    ).order_by("id")
    by_message: dict[int, list[tuple[str, str]]] = {}
    for recipient in pending:
        by_message.setdefault(recipient.message_id, []).append(
            (recipient.address, recipient.domain)
        )
    return [
        Claimed(
            id=m.id,
            token=tokens[m.id],
            mail_from=m.mail_from,
            raw=bytes(m.raw_bytes),
            attempts=m.attempts,
            created_at=m.created_at,
            recipients=tuple(by_message.get(m.id, ())),
        )
        for m in sorted(messages, key=lambda m: m.id)
    ]


async def renew_leases(tokens: Sequence[str], until: datetime) -> int:
    """Extend the leases a worker still holds; returns how many it still had."""
    if not tokens:
        return 0
    return await OutboundMessage.filter(lease_owner__in=list(tokens)).update(lease_until=until)


async def release(tokens: Sequence[str]) -> None:
    """Give claims back untouched (a worker stopping), so they are due again at once."""
    if tokens:
        await OutboundMessage.filter(lease_owner__in=list(tokens)).update(
            lease_owner=None, lease_until=None
        )


async def record(message_id: int, token: str, outcomes: Sequence[Outcome], now: datetime) -> None:
    """Store the outcome of one attempt for some recipients.

    Raises:
        LeaseLost: The claim is no longer ours; nothing was written.
    """
    async with uids.write_transaction() as connection:
        await _check_lease(message_id, token, connection)
        for outcome in outcomes:
            await (
                OutboundRecipient.filter(
                    message_id=message_id, address=outcome.address, state=RecipientState.PENDING
                )
                .using_db(connection)
                .update(
                    state=outcome.state,
                    attempts=F("attempts") + 1,
                    smtp_code=outcome.smtp_code,
                    status=outcome.status,
                    diagnostic=outcome.diagnostic,
                    remote_host=outcome.remote_host,
                    last_attempt_at=now,
                )
            )


async def give_up(message_id: int, token: str, *, now: datetime) -> None:
    """Fail every still-pending recipient: the message stayed undeliverable too long.

    Each keeps its last reply as the diagnostic; the status becomes 5.4.7,
    "delivery time expired" (RFC 3463).

    Raises:
        LeaseLost: The claim is no longer ours.
    """
    async with uids.write_transaction() as connection:
        await _check_lease(message_id, token, connection)
        await (
            OutboundRecipient.filter(message_id=message_id, state=RecipientState.PENDING)
            .using_db(connection)
            .update(state=RecipientState.FAILED, status=EXPIRED_STATUS)
        )


async def reschedule(message_id: int, token: str, *, at: datetime, error: str) -> None:
    """Put a message with deferred recipients back in line for ``at``; ends the claim.

    Raises:
        LeaseLost: The claim is no longer ours.
    """
    changed = await OutboundMessage.filter(id=message_id, lease_owner=token).update(
        next_attempt_at=at,
        last_error=error,
        lease_owner=None,
        lease_until=None,
        updated_at=_utcnow(),
    )
    if not changed:
        raise LeaseLost(str(message_id))


async def finish(message_id: int, token: str, *, error: str = "") -> QueueState:
    """Close a message none of whose recipients is pending; ends the claim.

    Raises:
        LeaseLost: The claim is no longer ours.
    """
    states = {
        str(state)
        for state in await OutboundRecipient.filter(message_id=message_id).values_list(
            "state", flat=True
        )
    }
    if RecipientState.PENDING in states:
        raise RuntimeError(f"queued message {message_id} still has pending recipients")
    if states <= {RecipientState.DELIVERED}:
        final = QueueState.DELIVERED
    elif states == {RecipientState.FAILED}:
        final = QueueState.FAILED
    else:
        final = QueueState.PARTIAL
    changed = await OutboundMessage.filter(id=message_id, lease_owner=token).update(
        state=final, last_error=error, lease_owner=None, lease_until=None, updated_at=_utcnow()
    )
    if not changed:
        raise LeaseLost(str(message_id))
    return final


async def recipients_of(message_id: int) -> list[RecipientReport]:
    """Every recipient of a message with its last outcome, in queueing order."""
    rows = await OutboundRecipient.filter(message_id=message_id).order_by("id")
    return [_report(row) for row in rows]


async def next_due(now: datetime) -> datetime | None:
    """When the earliest unleased queued message is due (None: nothing queued)."""
    row = (
        await OutboundMessage.filter(state=QueueState.QUEUED)
        .filter(Q(lease_until__isnull=True) | Q(lease_until__lte=now))
        .order_by("next_attempt_at")
        .only("id", "next_attempt_at")
        .first()
    )
    return row.next_attempt_at if row is not None else None


async def _check_lease(message_id: int, token: str, connection: object) -> None:
    held = (
        await OutboundMessage.filter(id=message_id, lease_owner=token)
        .using_db(connection)  # type: ignore[arg-type]
        .exists()
    )
    if not held:
        raise LeaseLost(str(message_id))


# --- admin views -------------------------------------------------------------

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
)


async def list_entries(
    *, state: str | None = None, offset: int = 0, limit: int = 50
) -> tuple[int, list[QueueEntry]]:
    """A page of the queue, newest first; returns (total, entries) without recipients."""
    query = OutboundMessage.all()
    if state:
        query = query.filter(state=state)
    total = await query.count()
    rows = await query.order_by("-id").offset(offset).limit(limit).only(*_ENTRY_FIELDS)
    return total, [_entry(row) for row in rows]


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
        NotFound: No such queued (still undelivered) message.
    """
    changed = await OutboundMessage.filter(id=message_id, state=QueueState.QUEUED).update(
        next_attempt_at=now
    )
    if not changed:
        raise NotFound(f"No queued message {message_id}")


async def delete_entry(message_id: int) -> None:
    """Drop a message from the queue (delivered or not), no bounce.

    Raises:
        NotFound: No such queue id.
    """
    if not await OutboundMessage.filter(id=message_id).delete():
        raise NotFound(f"Queued message {message_id} not found")


async def purge_finished(before: datetime) -> int:
    """Delete closed messages last changed before ``before``; returns how many."""
    return await OutboundMessage.filter(
        state__in=[QueueState.DELIVERED, QueueState.FAILED, QueueState.PARTIAL],
        updated_at__lt=before,
    ).delete()


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
    )


def _report(row: OutboundRecipient) -> RecipientReport:
    return RecipientReport(
        address=row.address,
        state=row.state,
        attempts=row.attempts,
        smtp_code=row.smtp_code,
        status=row.status,
        diagnostic=row.diagnostic,
        remote_host=row.remote_host,
        last_attempt_at=row.last_attempt_at,
    )


# --- the MTA-STS policy cache (RFC 8461 section 5.1) ----------------------------


@dataclass(frozen=True, slots=True)
class CachedPolicy:
    policy_id: str
    policy: str
    expires_at: datetime


async def cached_policy(domain: str, now: datetime) -> CachedPolicy | None:
    """The stored, unexpired MTA-STS policy of a recipient domain."""
    row = await MtaStsPolicyRecord.get_or_none(domain=domain, expires_at__gt=now)
    return None if row is None else CachedPolicy(row.policy_id, row.policy, row.expires_at)


async def save_policy(
    domain: str, policy_id: str, policy: str, *, now: datetime, expires_at: datetime
) -> None:
    """Remember a freshly fetched policy (replacing the domain's previous one)."""
    for attempt in range(2):
        changed = await MtaStsPolicyRecord.filter(domain=domain).update(
            policy_id=policy_id, policy=policy, fetched_at=now, expires_at=expires_at
        )
        if changed or attempt:
            return
        try:
            await MtaStsPolicyRecord.create(
                domain=domain,
                policy_id=policy_id,
                policy=policy,
                fetched_at=now,
                expires_at=expires_at,
            )
            return
        except IntegrityError:  # another node stored it first: overwrite with ours
            continue
