"""The outbound queue as the worker drives it: durable enqueue, leased claims, outcomes.

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
   answered; :func:`mark_bounced` notes which failed recipients the sender
   was told about, after the attempt they failed in; :func:`reschedule` puts
   deferred recipients back in line; :func:`finish` closes the message once
   no recipient is pending.
4. :func:`purge_finished` drops closed messages once they are old enough.

What admins see of the queue and may do to it from outside a claim (list,
retry, delete) is ``store/outbound_admin.py``; the worker's MTA-STS policy
cache is ``store/mta_sts_policies.py``.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from tortoise.expressions import F, Q

from mailcue_server.errors import Invalid
from mailcue_server.mail.dns_records import domain_name
from mailcue_server.mail.dsn_params import DsnRequest, RecipientDsn, Return
from mailcue_server.store import uids
from mailcue_server.store.outbound_models import (
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
    # RFC 3461 parameters of the submission: RET, ENVID, and the pending recipients'
    # NOTIFY and ORCPT (for the bounce, and for a next hop that takes DSN requests).
    dsn: DsnRequest = field(default_factory=DsnRequest)


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
    """One recipient of a queued message with its last outcome."""

    address: str
    state: str
    attempts: int
    smtp_code: int
    status: str
    diagnostic: str
    remote_host: str
    last_attempt_at: datetime | None
    bounced_at: datetime | None = None
    dsn: RecipientDsn = field(default_factory=RecipientDsn)  # NOTIFY, ORCPT given


def claim_token(owner: str) -> str:
    """A token for one claim: the worker's id plus randomness (fits ``lease_owner``)."""
    return f"{owner[:40]}.{secrets.token_hex(8)}"


async def enqueue(
    raw: bytes,
    mail_from: str,
    recipients: Sequence[str],
    *,
    now: datetime | None = None,
    dsn: DsnRequest | None = None,
) -> int:
    """Queue a message for delivery; committed when this returns.

    Args:
        raw: The exact bytes to send (already DKIM-signed if it should be).
        mail_from: The envelope sender; ``""`` or ``"<>"`` is the null sender (bounces).
        recipients: Envelope recipients on any domain; duplicates are sent once.
        now: The queueing time (default: the clock); the first attempt is due at once.
        dsn: RFC 3461 parameters the sender gave (RET, ENVID; per recipient
            NOTIFY, ORCPT), kept for the bounce.

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
    dsn = dsn or DsnRequest()
    async with uids.write_transaction():
        message = await OutboundMessage.create(
            mail_from=sender,
            raw_bytes=raw,
            size=len(raw),
            next_attempt_at=now,
            created_at=now,
            dsn_ret=dsn.ret.value if dsn.ret else "",
            dsn_envid=dsn.envid,
        )
        wanted = {address: dsn.for_recipient(address) for address, _ in targets}
        await OutboundRecipient.bulk_create(
            OutboundRecipient(
                message_id=message.id,
                address=address,
                domain=domain,
                dsn_notify=",".join(wanted[address].notify),
                dsn_orcpt=wanted[address].orcpt,
            )
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
    asked: dict[int, dict[str, RecipientDsn]] = {}
    for recipient in pending:
        by_message.setdefault(recipient.message_id, []).append(
            (recipient.address, recipient.domain)
        )
        wanted = _recipient_dsn(recipient)
        if wanted != RecipientDsn():
            asked.setdefault(recipient.message_id, {})[recipient.address.lower()] = wanted
    return [
        Claimed(
            id=m.id,
            token=tokens[m.id],
            mail_from=m.mail_from,
            raw=bytes(m.raw_bytes),
            attempts=m.attempts,
            created_at=m.created_at,
            recipients=tuple(by_message.get(m.id, ())),
            dsn=DsnRequest(
                ret=Return(m.dsn_ret) if m.dsn_ret else None,
                envid=m.dsn_envid,
                recipients=asked.get(m.id, {}),
            ),
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


async def mark_bounced(
    message_id: int, token: str, addresses: Sequence[str], now: datetime
) -> None:
    """Note that the sender was told these failed recipients failed (never again).

    Raises:
        LeaseLost: The claim is no longer ours; nothing was written.
    """
    if not addresses:
        return
    async with uids.write_transaction() as connection:
        await _check_lease(message_id, token, connection)
        await (
            OutboundRecipient.filter(
                message_id=message_id,
                address__in=list(addresses),
                state=RecipientState.FAILED,
                bounced_at__isnull=True,
            )
            .using_db(connection)
            .update(bounced_at=now)
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
    return [recipient_report(row) for row in rows]


def recipient_report(row: OutboundRecipient) -> RecipientReport:
    """The report of one recipient row (``outbound_admin`` lists many at once)."""
    return RecipientReport(
        address=row.address,
        state=row.state,
        attempts=row.attempts,
        smtp_code=row.smtp_code,
        status=row.status,
        diagnostic=row.diagnostic,
        remote_host=row.remote_host,
        last_attempt_at=row.last_attempt_at,
        bounced_at=row.bounced_at,
        dsn=_recipient_dsn(row),
    )


def _recipient_dsn(row: OutboundRecipient) -> RecipientDsn:
    notify = tuple(value for value in row.dsn_notify.split(",") if value)
    return RecipientDsn(notify=notify, orcpt=row.dsn_orcpt)


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


async def purge_finished(before: datetime) -> int:
    """Delete closed messages last changed before ``before``; returns how many."""
    return await OutboundMessage.filter(
        state__in=[QueueState.DELIVERED, QueueState.FAILED, QueueState.PARTIAL],
        updated_at__lt=before,
    ).delete()


async def _check_lease(message_id: int, token: str, connection: object) -> None:
    held = (
        await OutboundMessage.filter(id=message_id, lease_owner=token)
        .using_db(connection)  # type: ignore[arg-type]
        .exists()
    )
    if not held:
        raise LeaseLost(str(message_id))
