"""Validating an address: syntax, the domain's DNS, an SMTP recipient probe, disposable list.

The DNS checks live in :mod:`.validation_dns`, the SMTP probe (which never
sends DATA) in :mod:`.validation_probe`. Every network step has
``MAILCUE_VALIDATION_TIMEOUT``: DNS takes at most one such step, finding the
MX's address one more, and the SMTP conversation two, so a call never lasts
much longer than four steps.
"""

from __future__ import annotations

from mailcue_server.config import Settings
from mailcue_server.mail.validation import (
    DomainState,
    RcptState,
    check_syntax,
    is_disposable,
    judge,
)
from mailcue_server.resolvers import risk_scores
from mailcue_server.resolvers.context import Context
from mailcue_server.resolvers.validation_dns import DomainLookup, look_up_domain
from mailcue_server.resolvers.validation_probe import probe_best_mx
from mailcue_server.schema.types.validation import (
    DnsStatus,
    EmailValidationDisposable,
    EmailValidationDns,
    EmailValidationMailbox,
    EmailValidationResponse,
    EmailValidationSyntax,
    ValidationStatus,
    ValidationVerdict,
)

NOT_CHECKED = "Not checked: the address is not valid"


async def validate_email(ctx: Context, email: str) -> EmailValidationResponse:
    """Check one address for the caller, and score it against the caller's delivery history.

    A catch-all address gets its ``catch_all_risk``; the score is remembered
    for calibration (``resolvers/risk_scores.py``).

    Raises:
        Unauthenticated: no credentials.
        MissingScope: an API key without ``email:read``.
    """
    principal = ctx.require_principal()
    principal.require_scope("email:read")
    result = await check_address(ctx.settings, email)
    [risk] = await risk_scores.score_results(ctx, principal.user_id, [result])
    if result.status is ValidationStatus.CATCH_ALL:
        result.catch_all_risk = risk_scores.catch_all_risk(risk)
    return result


async def check_address(settings: Settings, email: str) -> EmailValidationResponse:
    """Run every check that applies and combine them into one answer."""
    syntax = check_syntax(email.strip())
    mailbox = EmailValidationMailbox(reason_code="skipped", error=NOT_CHECKED)
    if syntax.is_valid and syntax.ascii_domain:
        disposable = EmailValidationDisposable(is_disposable=is_disposable(syntax.ascii_domain))
        lookup = await look_up_domain(settings, syntax.ascii_domain)
        if lookup.state is DomainState.ACCEPTS_MAIL:
            mailbox = await probe_best_mx(settings, lookup, syntax)
        else:
            mailbox.error = "Not checked: DNS named no mail host for the domain"
    else:
        disposable = EmailValidationDisposable(is_disposable=False, error=NOT_CHECKED)
        lookup = DomainLookup(DomainState.SKIPPED, _skipped_dns())
    verdict = judge(
        syntax,
        domain=lookup.state,
        domain_error=lookup.report.error,
        rcpt=_rcpt_state(mailbox),
        rcpt_detail=_rcpt_detail(mailbox),
        catch_all=mailbox.catch_all,
        disposable=disposable.is_disposable,
    )
    return EmailValidationResponse(
        email=email,
        is_valid=verdict.is_valid,
        status=ValidationStatus(verdict.status),
        verdict=ValidationVerdict(verdict.verdict),
        deliverable=verdict.deliverable,
        confidence=verdict.confidence,
        reason=verdict.reason,
        syntax=EmailValidationSyntax(
            is_valid=syntax.is_valid,
            local_part=syntax.local_part,
            domain=syntax.domain,
            error=syntax.error,
        ),
        dns=lookup.report,
        mailbox=mailbox,
        disposable=disposable,
    )


def _skipped_dns() -> EmailValidationDns:
    return EmailValidationDns(
        is_valid=False,
        has_mx=False,
        has_ns=False,
        has_a=False,
        status=DnsStatus.UNDETERMINED,
        error_code="skipped",
        error=NOT_CHECKED,
    )


def _rcpt_state(mailbox: EmailValidationMailbox) -> RcptState:
    if mailbox.is_valid is True:
        return RcptState.ACCEPTED
    if mailbox.is_valid is False:
        return RcptState.REJECTED
    return RcptState.SKIPPED if mailbox.reason_code == "skipped" else RcptState.UNKNOWN


def _rcpt_detail(mailbox: EmailValidationMailbox) -> str | None:
    if mailbox.smtp_code is not None:
        return f"{mailbox.smtp_code} {mailbox.smtp_response or ''}".strip()
    return mailbox.error
