"""Staged sends: a sample per recipient domain first, the rest once the sample proved the domain.

``create_send_canary`` stores the send, skips recipients whose domain is
suppressed or whose address hard-bounced before, and sends the sample (the
first ``sample_size`` recipients of each domain) through the normal send path
(``resolvers/sending.py``): one message per recipient, so a bounce names its
recipient. Outcomes reported since (``resolvers/deliverability.py``) mark
sample recipients as bounced. When the hold window ends (the
``send-canaries`` job, for ``auto_release``) or on ``decide``, each domain
whose sample hard-bounced more than ``bounce_threshold`` is blocked and the
held recipients of the other domains are sent. ``cancel`` stops a send that
is not decided yet.

Held recipients are sent as the canary's owner, limited to ``email:send``
from the canary's sender, whoever triggers the release: the job has no
caller, and a decision must not depend on which key asked for it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from uuid import UUID

from mailcue_server.errors import Conflict, Invalid, MailcueError
from mailcue_server.mail.addresses import canonical_address
from mailcue_server.mail.canary_plan import (
    HELD,
    SAMPLE,
    Member,
    judge_domains,
    plan_roles,
    summarise,
)
from mailcue_server.mail.compose import build_message
from mailcue_server.resolvers import sending
from mailcue_server.resolvers.context import Context, Principal, Services
from mailcue_server.schema.types.send_canaries import (
    MAX_HOLD_MINUTES,
    MAX_RECIPIENTS,
    MAX_SAMPLE_SIZE,
    CanaryRecipientStatus,
    CanaryRole,
    CanaryStatus,
    CreateSendCanaryRequest,
    SendCanaryListResponse,
    SendCanaryRecipient,
    SendCanaryResponse,
)
from mailcue_server.schema.types.sending import SendEmailRequest
from mailcue_server.store import deliverability, send_canaries, users
from mailcue_server.store.deliverability_models import (
    RecipientStatus,
    SendCanary,
)
from mailcue_server.store.deliverability_models import (
    SendCanaryRecipient as RecipientRow,
)
from mailcue_server.store.send_canaries import NewRecipient

log = logging.getLogger(__name__)

SCOPE = "email:send"
DEFAULT_SAMPLE_SIZE = 5
DEFAULT_HOLD_MINUTES = 60
MAX_LIST = 100
MAX_NAME = 200
SEND_CONCURRENCY = 4
"""Messages of one canary handed to the submission listener at the same time."""
_UNDECIDED = (CanaryStatus.PENDING.value, CanaryStatus.PROBING.value)


@dataclass(frozen=True)
class Letter:
    """The message of a staged send, as each of its recipients gets it."""

    from_address: str
    from_name: str
    subject: str
    body: str
    body_type: str
    reply_to: str | None

    @classmethod
    def of(cls, canary: SendCanary) -> Letter:
        return cls(
            canary.from_address,
            canary.from_name,
            canary.subject,
            canary.body,
            canary.body_type,
            canary.reply_to,
        )

    def to(self, recipient: str) -> SendEmailRequest:
        return SendEmailRequest(
            from_address=self.from_address,
            from_name=self.from_name,
            to_addresses=[recipient],
            subject=self.subject,
            body=self.body,
            body_type=self.body_type,
            reply_to=self.reply_to,
        )


async def create_send_canary(ctx: Context, request: CreateSendCanaryRequest) -> SendCanaryResponse:
    """Stage a send and send its sample now.

    Raises:
        Unauthenticated: No credentials.
        MissingScope: An API key without ``email:send``.
        NotFound: The sender is not a mailbox the caller may send from.
        Invalid: A recipient is not an address, a number is out of range, or the
            message cannot be built (bad reply-to, header injection...).
    """
    principal = ctx.require_principal()
    principal.require_scope(SCOPE)
    sample_size, hold_minutes = _limits(request)
    sender = await sending.check_sender(ctx, request.from_address)
    recipients = _recipients(request.recipients)
    letter = Letter(
        from_address=sender,
        from_name=request.from_name.strip(),
        subject=request.subject,
        body=request.body,
        body_type=request.body_type.value,
        reply_to=request.reply_to,
    )
    # Build one message now, so a field that cannot be sent fails the request, not each send.
    build_message(sending.compose_spec(letter.to(recipients[0]), sender, letter.from_name))
    now = ctx.now()
    canary = await send_canaries.create(
        principal.user_id,
        await _plan(principal.user_id, recipients, sample_size, now),
        now,
        name=request.name,
        status=CanaryStatus.PENDING.value,
        sample_size=sample_size,
        hold_minutes=hold_minutes,
        bounce_threshold=request.bounce_threshold,
        auto_release=request.auto_release,
        from_address=letter.from_address,
        from_name=letter.from_name,
        subject=letter.subject,
        body=letter.body,
        body_type=letter.body_type,
        reply_to=letter.reply_to,
    )
    await _send_sample(ctx, canary)
    return await _response_of(canary.id)


def _limits(request: CreateSendCanaryRequest) -> tuple[int, int]:
    """Range checks REST's schema also makes (GraphQL inputs arrive unchecked)."""
    sample_size = DEFAULT_SAMPLE_SIZE if request.sample_size is None else request.sample_size
    hold = DEFAULT_HOLD_MINUTES if request.hold_minutes is None else request.hold_minutes
    if not 1 <= sample_size <= MAX_SAMPLE_SIZE:
        raise Invalid(f"sample_size must be between 1 and {MAX_SAMPLE_SIZE}")
    if not 1 <= hold <= MAX_HOLD_MINUTES:
        raise Invalid(f"hold_minutes must be between 1 and {MAX_HOLD_MINUTES}")
    if not 0 <= request.bounce_threshold <= 1:
        raise Invalid("bounce_threshold must be between 0 and 1")
    if not 1 <= len(request.recipients) <= MAX_RECIPIENTS:
        raise Invalid(f"recipients must hold between 1 and {MAX_RECIPIENTS} addresses")
    if len(request.name) > MAX_NAME or len(request.from_name) > MAX_NAME:
        raise Invalid(f"name and from_name take at most {MAX_NAME} characters")
    return sample_size, hold


def _recipients(given: Sequence[str]) -> list[str]:
    """Canonical addresses; the first spelling of each (case-insensitively) is kept."""
    found: dict[str, str] = {}
    for value in given:
        try:
            address = canonical_address(value)
        except Invalid as exc:
            raise Invalid(f"recipients: {exc.message}") from None
        found.setdefault(address.lower(), address)
    return list(found.values())


async def _plan(
    user_id: UUID, recipients: list[str], sample_size: int, now: datetime
) -> list[NewRecipient]:
    """Each recipient's role and first status: suppressed ones are skipped, never sent."""
    domains = [deliverability.domain_of(r) for r in recipients]
    suppressed = await deliverability.suppressed_among(user_id, domains, now)
    last = await deliverability.last_outcomes(user_id, recipients)
    scores = await deliverability.latest_scores(user_id, recipients)
    skip = [
        domain in suppressed or last.get(address.lower()) == RecipientStatus.HARD_BOUNCE.value
        for address, domain in zip(recipients, domains, strict=True)
    ]
    sendable = [domain for domain, skipped in zip(domains, skip, strict=True) if not skipped]
    roles = iter(plan_roles(sendable, sample_size))
    return [
        NewRecipient(
            email=address,
            domain=domain,
            role=HELD if skipped else next(roles),
            status=RecipientStatus.SKIPPED.value if skipped else RecipientStatus.PENDING.value,
            risk_score=scores.get(address.lower()),
        )
        for address, domain, skipped in zip(recipients, domains, skip, strict=True)
    ]


async def _send_sample(ctx: Context, canary: SendCanary) -> None:
    """Send the sample as the caller, then wait for bounces (or end the send if none went)."""
    rows = (await send_canaries.recipients_of([canary.id]))[canary.id]
    sample = [r for r in rows if r.role == SAMPLE and r.status == RecipientStatus.PENDING.value]
    errors = await _send_each(ctx, Letter.of(canary), sample, RecipientStatus.SENT.value)
    now = ctx.now()
    if not sample:
        await send_canaries.transition(
            canary.id,
            [CanaryStatus.PENDING.value],
            status=CanaryStatus.BLOCKED.value,
            decided_at=now,
            decision_reason="Nothing was sent: every recipient is suppressed or hard-bounced "
            "before",
        )
    elif len(errors) == len(sample):
        if await send_canaries.transition(
            canary.id,
            [CanaryStatus.PENDING.value],
            status=CanaryStatus.FAILED.value,
            decided_at=now,
            decision_reason=f"No sample message could be sent: {errors[0]}",
        ):
            await send_canaries.skip_pending(canary.id, now)
    else:
        await send_canaries.transition(
            canary.id,
            [CanaryStatus.PENDING.value],
            status=CanaryStatus.PROBING.value,
            sample_sent_at=now,
            decision_due_at=now + timedelta(minutes=canary.hold_minutes),
        )


async def _send_each(
    ctx: Context, letter: Letter, rows: Sequence[RecipientRow], status: str
) -> list[str]:
    """Send to each recipient still pending (claiming it first); the errors, one per failure.

    A recipient someone else claimed meanwhile (a cancel, another node) is left alone.
    """
    gate = asyncio.Semaphore(SEND_CONCURRENCY)
    errors: list[str] = []

    async def one(row: RecipientRow) -> None:
        async with gate:
            now = ctx.now()
            claimed = await send_canaries.claim_recipient(
                row.id, RecipientStatus.PENDING.value, status=status, sent_at=now
            )
            if not claimed:
                return
            try:
                await sending.send_email(ctx, letter.to(row.email))
            except MailcueError as exc:
                errors.append(exc.message)
                await send_canaries.update_recipient(
                    row.id, status=RecipientStatus.SKIPPED.value, sent_at=None, resolved_at=now
                )

    await asyncio.gather(*(one(row) for row in rows))
    return errors


# --- deciding --------------------------------------------------------------------------------


async def decide_send_canary(ctx: Context, canary_id: str) -> SendCanaryResponse:
    """Decide now instead of at the end of the hold window.

    Raises:
        NotFound: No such canary of the caller's.
        Conflict: It is still sending its sample, or was decided or cancelled already.
    """
    principal = ctx.require_principal()
    principal.require_scope(SCOPE)
    canary = await send_canaries.get(canary_id, principal.user_id)
    await _decide(ctx.services, canary)
    return await _response_of(canary.id)


async def cancel_send_canary(ctx: Context, canary_id: str) -> SendCanaryResponse:
    """Stop a send before its held recipients go out; nobody pending is sent to.

    Raises:
        NotFound: No such canary of the caller's.
        Conflict: It was decided or cancelled already.
    """
    principal = ctx.require_principal()
    principal.require_scope(SCOPE)
    canary = await send_canaries.get(canary_id, principal.user_id)
    now = ctx.now()
    cancelled = await send_canaries.transition(
        canary.id,
        _UNDECIDED,
        status=CanaryStatus.CANCELLED.value,
        decided_at=now,
        decision_reason="Cancelled before the held recipients were sent",
    )
    if not cancelled:
        raise _settled(await send_canaries.reload(canary.id))
    await send_canaries.skip_pending(canary.id, now)
    return await _response_of(canary.id)


def _settled(canary: SendCanary) -> Conflict:
    if canary.status == CanaryStatus.PENDING.value:
        return Conflict(f"Send canary {canary.id} is still sending its sample")
    return Conflict(f"Send canary {canary.id} is already {canary.status}")


async def _decide(services: Services, canary: SendCanary) -> None:
    """Judge each domain from its sample, then block or send its held recipients."""
    if canary.status != CanaryStatus.PROBING.value:
        raise _settled(canary)
    now = services.clock()
    rows = (await send_canaries.recipients_of([canary.id]))[canary.id]
    suppressed = await deliverability.suppressed_among(
        canary.user_id,
        {r.domain for r in rows},
        now,
    )
    verdicts = judge_domains(
        [Member(r.domain, r.role, r.status) for r in rows],
        threshold=canary.bounce_threshold,
        suppressed=frozenset(suppressed),
    )
    released, reason = summarise(verdicts)
    sender = await _owner_context(services, canary)
    if sender is None and any(v.release for v in verdicts):
        released, reason = False, "Blocked: the owner's account is disabled"
        verdicts = [dataclasses.replace(v, release=False) for v in verdicts]
    decided = await send_canaries.transition(
        canary.id,
        [CanaryStatus.PROBING.value],
        status=(CanaryStatus.RELEASED if released else CanaryStatus.BLOCKED).value,
        decided_at=now,
        decision_reason=reason,
    )
    if not decided:
        raise _settled(await send_canaries.reload(canary.id))
    blocked = [v.domain for v in verdicts if not v.release]
    await send_canaries.mark_held(canary.id, blocked, RecipientStatus.BLOCKED.value, now)
    going = {v.domain for v in verdicts if v.release}
    held = [
        r
        for r in rows
        if r.role == HELD and r.status == RecipientStatus.PENDING.value and r.domain in going
    ]
    if sender is not None and held:
        await _send_each(sender, Letter.of(canary), held, RecipientStatus.RELEASED.value)


async def _owner_context(services: Services, canary: SendCanary) -> Context | None:
    """The canary's owner, allowed nothing but to send from the canary's sender."""
    owner = await users.get_active(canary.user_id)
    if owner is None:
        return None
    principal = Principal(
        user_id=owner.id,
        username=owner.username,
        is_admin=owner.is_admin,
        scopes=frozenset({SCOPE}),
        allowed_mailboxes=frozenset({canary.from_address.lower()}),
    )
    return Context(services=services, principal=principal)


async def release_due(services: Services) -> int:
    """Decide every canary whose hold window has ended (the periodic job); how many."""
    decided = 0
    for canary in await send_canaries.due(services.clock()):
        try:
            await _decide(services, canary)
        except Conflict:
            continue  # decided meanwhile (a request, another node)
        except Exception:  # one broken canary must not stop the others
            log.exception("deciding send canary %s failed", canary.id)
            continue
        decided += 1
    return decided


# --- reading ---------------------------------------------------------------------------------


async def get_send_canary(ctx: Context, canary_id: str) -> SendCanaryResponse:
    """One of the caller's staged sends, with every recipient."""
    principal = ctx.require_principal()
    principal.require_scope(SCOPE)
    canary = await send_canaries.get(canary_id, principal.user_id)
    return await _response_of(canary.id)


async def list_send_canaries(ctx: Context, limit: int = 25) -> SendCanaryListResponse:
    """The caller's newest staged sends (``limit`` 1 to 100) and how many there are."""
    principal = ctx.require_principal()
    principal.require_scope(SCOPE)
    if not 1 <= limit <= MAX_LIST:
        raise Invalid(f"limit must be between 1 and {MAX_LIST}")
    rows, total = await send_canaries.list_for_user(principal.user_id, limit)
    recipients = await send_canaries.recipients_of(c.id for c in rows)
    return SendCanaryListResponse(
        canaries=[_response(c, recipients[c.id]) for c in rows], total=total
    )


async def _response_of(canary_id: UUID) -> SendCanaryResponse:
    canary = await send_canaries.reload(canary_id)
    rows = (await send_canaries.recipients_of([canary.id]))[canary.id]
    return _response(canary, rows)


def _response(canary: SendCanary, rows: Sequence[RecipientRow]) -> SendCanaryResponse:
    statuses = [r.status for r in rows]
    return SendCanaryResponse(
        id=str(canary.id),
        name=canary.name,
        status=CanaryStatus(canary.status),
        sample_size=canary.sample_size,
        hold_minutes=canary.hold_minutes,
        bounce_threshold=canary.bounce_threshold,
        auto_release=canary.auto_release,
        from_address=canary.from_address,
        subject=canary.subject,
        created_at=canary.created_at,
        sample_sent_at=canary.sample_sent_at,
        decision_due_at=canary.decision_due_at,
        decided_at=canary.decided_at,
        decision_reason=canary.decision_reason,
        total_recipients=len(rows),
        sample_recipients=sum(1 for r in rows if r.role == SAMPLE),
        held_recipients=sum(1 for r in rows if r.role == HELD),
        hard_bounces=statuses.count(RecipientStatus.HARD_BOUNCE.value),
        soft_bounces=statuses.count(RecipientStatus.SOFT_BOUNCE.value),
        recipients=[
            SendCanaryRecipient(
                email=r.email,
                role=CanaryRole(r.role),
                status=CanaryRecipientStatus(r.status),
                risk_score=r.risk_score,
                smtp_code=r.smtp_code,
                enhanced_status=r.enhanced_status,
                sent_at=r.sent_at,
                resolved_at=r.resolved_at,
            )
            for r in rows
        ],
    )
