"""A user's delivery history: outcomes reported or read from bounces, and what they drive.

Every outcome (``POST /emails/validation-feedback``, or each recipient of a
bounce given to ``POST /emails/bounces/ingest``) is stored with the risk
score last issued for the address, and then:

- updates that address in the user's staged sends (a sample's hard bounce
  counts against its domain when the canary is decided);
- for a hard bounce, re-measures the domain over the last 30 days and pauses
  it (a suppressed domain) when its hard-bounce rate is over
  ``MAILCUE_SUPPRESSION_BOUNCE_RATE`` on at least
  ``MAILCUE_SUPPRESSION_MIN_OBSERVATIONS`` outcomes;
- feeds the domain's measured rate into later risk scores and the
  calibration figures.

History is per user: API keys act for their user, and one user's reports
never touch another user's sending.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Sequence
from datetime import timedelta
from uuid import UUID

from mailcue_server.errors import Forbidden, Invalid
from mailcue_server.mail.addresses import canonical_address
from mailcue_server.mail.bounce_report import BounceReport, read_bounce
from mailcue_server.mail.bounce_risk import calibrate, crosses_limit
from mailcue_server.resolvers.context import Context, Services
from mailcue_server.resolvers.risk_scores import HISTORY_DAYS
from mailcue_server.schema.types.deliverability import (
    MAX_BOUNCE_MESSAGE,
    DeliveryOutcomeKind,
    DomainSuppressionEntry,
    DomainSuppressionListResponse,
    EmailBounceIngestRecipient,
    EmailBounceIngestRequest,
    EmailBounceIngestResponse,
    EmailValidationCalibrationBin,
    EmailValidationCalibrationResponse,
    EmailValidationFeedbackRequest,
    EmailValidationFeedbackResponse,
)
from mailcue_server.store import deliverability, mailboxes, send_canaries
from mailcue_server.store.deliverability import NewOutcome
from mailcue_server.store.deliverability_models import Outcome, OutcomeSource

log = logging.getLogger(__name__)

READ = "email:read"
RECORD = "email:write"
CALIBRATION_SCOPES = ("tenant", "global")
MAX_CALIBRATION_DAYS = 365
_ENHANCED_STATUS = re.compile(r"[245]\.\d{1,3}\.\d{1,3}")


async def record_feedback(
    ctx: Context, request: EmailValidationFeedbackRequest
) -> EmailValidationFeedbackResponse:
    """Record what real mail to ``request.email`` did.

    Raises:
        Unauthenticated: No credentials.
        MissingScope: An API key without ``email:write``.
        Invalid: Not an address, an SMTP code outside 100..599 or a malformed status.
    """
    principal = ctx.require_principal()
    principal.require_scope(RECORD)
    try:
        address = canonical_address(request.email)
    except Invalid as exc:
        raise Invalid(f"email: {exc.message}") from None
    if request.smtp_code is not None and not 100 <= request.smtp_code <= 599:
        raise Invalid("smtp_code must be between 100 and 599")
    status = (request.enhanced_status or "").strip() or None
    if status is not None and not _ENHANCED_STATUS.fullmatch(status):
        raise Invalid(f"enhanced_status '{status}' is not an RFC 3463 code such as 5.1.1")
    outcome = Outcome(request.outcome.value)
    await record(
        ctx,
        principal.user_id,
        [
            NewOutcome(
                address=address,
                outcome=outcome,
                source=OutcomeSource.FEEDBACK.value,
                smtp_code=request.smtp_code,
                enhanced_status=status,
            )
        ],
    )
    return EmailValidationFeedbackResponse(recorded=True, outcome=request.outcome)


async def ingest_bounce(
    ctx: Context, request: EmailBounceIngestRequest
) -> EmailBounceIngestResponse:
    """Read a delivery status notification and record each recipient's outcome.

    A message that is not a DSN is answered with ``is_dsn`` false and nothing
    recorded (not an error: a mailbox of bounces holds other mail too).
    """
    principal = ctx.require_principal()
    principal.require_scope(RECORD)
    if not request.raw_message.strip():
        raise Invalid("raw_message is empty")
    if len(request.raw_message) > MAX_BOUNCE_MESSAGE:
        raise Invalid(f"raw_message takes at most {MAX_BOUNCE_MESSAGE} characters")
    # Parsing a message of up to 2 MB is CPU work: off the event loop.
    report = await asyncio.to_thread(read_bounce, request.raw_message)
    recorded = await record(ctx, principal.user_id, _outcomes_of(report))
    return EmailBounceIngestResponse(
        is_dsn=report.is_dsn,
        recorded=recorded,
        recipients=[
            EmailBounceIngestRecipient(
                recipient=r.recipient,
                outcome=DeliveryOutcomeKind(r.outcome),
                status=r.status,
                smtp_code=r.smtp_code,
                diagnostic_code=r.diagnostic_code,
            )
            for r in report.recipients
        ],
    )


def _outcomes_of(report: BounceReport) -> list[NewOutcome]:
    return [
        NewOutcome(
            address=r.recipient,
            outcome=Outcome(r.outcome),
            source=OutcomeSource.BOUNCE.value,
            smtp_code=r.smtp_code,
            enhanced_status=(r.status or "")[:16] or None,
            diagnostic=r.diagnostic_code or "",
        )
        for r in report.recipients
    ]


async def record_received_bounces(
    services: Services, reports: Sequence[tuple[str, bytes]]
) -> None:
    """Bounces that arrive in a mailbox become its owner's delivery history, as if the owner
    had handed each to ``POST /emails/bounces/ingest``: the bounces a server receives are the
    outcomes nobody should have to report by hand.

    Called after the receiving node committed them (once per copy, on that node only).
    Mailboxes without an owner (made by their first mail in test mode) have no history.
    """
    ctx = Context(services)
    for address, raw in reports:
        try:
            mailbox = await mailboxes.get_mailbox(address)
            owner = mailbox.owner_id  # type: ignore[attr-defined]
            if owner is None or len(raw) > MAX_BOUNCE_MESSAGE:
                continue
            report = await asyncio.to_thread(read_bounce, raw)
            outcomes = _outcomes_of(report)
            if outcomes:
                await record(ctx, owner, outcomes)
        except Exception:  # one bad report must not stop the others
            log.exception("could not record the bounce received by %s", address)


async def record(ctx: Context, user_id: UUID, outcomes: Sequence[NewOutcome]) -> int:
    """Store outcomes, update staged sends, and pause domains that crossed the limit."""
    now = ctx.now()
    recorded = await deliverability.add_outcomes(user_id, outcomes, now)
    for item in outcomes:
        await send_canaries.record_outcome(
            user_id,
            item.address,
            status=item.outcome.value,
            smtp_code=item.smtp_code,
            enhanced_status=item.enhanced_status,
            now=now,
        )
    bounced = {
        deliverability.domain_of(o.address) for o in outcomes if o.outcome is Outcome.HARD_BOUNCE
    }
    await _suppress_if_over_limit(ctx, user_id, bounced)
    return recorded


async def _suppress_if_over_limit(ctx: Context, user_id: UUID, domains: set[str]) -> None:
    if not domains:
        return
    settings = ctx.settings
    now = ctx.now()
    histories = await deliverability.domain_histories(
        user_id, domains, now - timedelta(days=HISTORY_DAYS)
    )
    for domain, history in histories.items():
        if not crosses_limit(
            history,
            limit=settings.suppression_bounce_rate,
            min_observations=settings.suppression_min_observations,
        ):
            continue
        rate = history.hard_bounces / history.observations
        await deliverability.suppress(
            user_id,
            domain,
            reason=f"{history.hard_bounces} of {history.observations} recorded deliveries in "
            f"{HISTORY_DAYS} days hard-bounced ({rate:.0%}, limit "
            f"{settings.suppression_bounce_rate:.0%})",
            history=history,
            now=now,
            expires_at=now + timedelta(hours=settings.suppression_hours),
        )


async def validation_calibration(
    ctx: Context, *, days: int = 90, scope: str = "tenant"
) -> EmailValidationCalibrationResponse:
    """How the scores issued in the last ``days`` compare with the outcomes that followed.

    ``scope`` ``tenant`` is the caller's own history; ``global`` pools every
    user's (admins only: it is other users' data, even in aggregate).

    Raises:
        Invalid: ``days`` outside 1..365 or an unknown ``scope``.
        Forbidden: ``global`` for a regular user.
    """
    principal = ctx.require_principal()
    principal.require_scope(READ)
    if not 1 <= days <= MAX_CALIBRATION_DAYS:
        raise Invalid(f"days must be between 1 and {MAX_CALIBRATION_DAYS}")
    if scope not in CALIBRATION_SCOPES:
        raise Invalid("scope must be 'tenant' or 'global'")
    if scope == "global" and not principal.is_admin:
        raise Forbidden("The global calibration pools every user's history: administrators only")
    user = None if scope == "global" else principal.user_id
    figures = calibrate(
        await deliverability.calibration_pairs(user, ctx.now() - timedelta(days=days))
    )
    return EmailValidationCalibrationResponse(
        sample_size=figures.sample_size,
        brier_score=figures.brier_score,
        mean_predicted=figures.mean_predicted,
        observed_rate=figures.observed_rate,
        bins=[
            EmailValidationCalibrationBin(
                lower=b.lower,
                upper=b.upper,
                count=b.count,
                predicted_mean=b.predicted_mean,
                observed_rate=b.observed_rate,
            )
            for b in figures.bins
        ],
    )


async def suppressed_domains(ctx: Context) -> DomainSuppressionListResponse:
    """The caller's recipient domains that are paused now, newest first."""
    principal = ctx.require_principal()
    principal.require_scope(READ)
    rows = await deliverability.active_suppressions(principal.user_id, ctx.now())
    entries = [
        DomainSuppressionEntry(
            domain=row.domain,
            reason=row.reason,
            hard_bounces=row.hard_bounces,
            observations=row.observations,
            created_at=row.created_at,
            expires_at=row.expires_at,
        )
        for row in rows
    ]
    return DomainSuppressionListResponse(suppressions=entries, total=len(entries))
