"""Validating many addresses at once: each checked like a single one, then judged together.

Every distinct address runs the single validation (``check_address``: syntax,
DNS, the SMTP probe, the disposable list), at most
``MAILCUE_VALIDATION_BATCH_CONCURRENCY`` at a time. The batch then adds what
only a batch shows (each domain's naming convention, several spellings of
one name), scores every address against the caller's history, and, given a
target bounce rate, picks the largest subset that fits it.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections import Counter

from mailcue_server.errors import Invalid
from mailcue_server.mail.batch_evidence import Evidence, batch_evidence
from mailcue_server.mail.bounce_risk import Risk, select_within_budget
from mailcue_server.resolvers import risk_scores
from mailcue_server.resolvers.context import Context
from mailcue_server.resolvers.validation import check_address
from mailcue_server.schema.types.validation import (
    EmailValidationResponse,
    RecommendedAction,
    ValidationStatus,
)
from mailcue_server.schema.types.validation_batch import (
    MAX_BATCH,
    EmailValidationBatchItem,
    EmailValidationBatchRequest,
    EmailValidationBatchResponse,
    EmailValidationBatchSummary,
    EmailValidationBudgetSelection,
)


async def validate_batch(
    ctx: Context, request: EmailValidationBatchRequest
) -> EmailValidationBatchResponse:
    """Check ``request.emails`` together; the answer lists them in the order given.

    Raises:
        Unauthenticated: No credentials.
        MissingScope: An API key without ``email:read``.
        Invalid: No address, more than 1,000, or a target outside 0..1.
    """
    principal = ctx.require_principal()
    principal.require_scope("email:read")
    emails = [email.strip() for email in request.emails]
    if not 1 <= len(emails) <= MAX_BATCH:
        raise Invalid(f"emails must hold between 1 and {MAX_BATCH} addresses")
    target = request.target_bounce_rate
    if target is not None and not 0 <= target <= 1:
        raise Invalid("target_bounce_rate must be between 0 and 1")
    results = await _check_all(ctx, emails)
    evidence = (
        batch_evidence([(r.syntax.local_part or "", _domain(r)) for r in results])
        if request.include_domain_signals
        else [Evidence() for _ in results]
    )
    risks = await risk_scores.score_results(ctx, principal.user_id, results, evidence)
    items = [
        _item(result, found, risk)
        for result, found, risk in zip(results, evidence, risks, strict=True)
    ]
    return EmailValidationBatchResponse(
        results=items,
        summary=_summary(items),
        selection=None if target is None else _selection(items, target),
    )


async def _check_all(ctx: Context, emails: list[str]) -> list[EmailValidationResponse]:
    """The single validation of each distinct address, a bounded number at a time."""
    gate = asyncio.Semaphore(ctx.settings.validation_batch_concurrency)
    distinct = list(dict.fromkeys(email.lower() for email in emails))

    async def check(email: str) -> EmailValidationResponse:
        async with gate:
            return await check_address(ctx.settings, email)

    checked = dict(zip(distinct, await asyncio.gather(*(check(e) for e in distinct)), strict=True))
    # A repeated address gets the same findings under the spelling it was given.
    results = []
    for email in emails:
        found = checked[email.lower()]
        results.append(found if found.email == email else dataclasses.replace(found, email=email))
    return results


def _domain(result: EmailValidationResponse) -> str:
    return (result.syntax.domain or "").lower()


def _item(
    result: EmailValidationResponse, found: Evidence, risk: Risk
) -> EmailValidationBatchItem:
    mailbox = result.mailbox
    return EmailValidationBatchItem(
        email=result.email,
        status=result.status,
        verdict=result.verdict,
        deliverable=result.deliverable,
        reason=result.reason,
        risk_score=risk.score,
        recommended_action=RecommendedAction(risk.action),
        matches_domain_pattern=found.matches_domain_pattern,
        permutation_variant=found.permutation_variant,
        catch_all_risk=(
            risk_scores.catch_all_risk(risk)
            if result.status is ValidationStatus.CATCH_ALL
            else None
        ),
        target_latency_ms=mailbox.target_latency_ms,
        control_median_latency_ms=mailbox.control_median_latency_ms,
        error=result.syntax.error or result.dns.error or mailbox.error,
    )


def _summary(items: list[EmailValidationBatchItem]) -> EmailValidationBatchSummary:
    counts = Counter(item.status for item in items)
    mean = round(sum(item.risk_score for item in items) / len(items), 4)
    return EmailValidationBatchSummary(
        total=len(items),
        valid=counts[ValidationStatus.VALID],
        invalid=counts[ValidationStatus.INVALID],
        catch_all=counts[ValidationStatus.CATCH_ALL],
        undetermined=counts[ValidationStatus.UNDETERMINED],
        disposable=counts[ValidationStatus.DISPOSABLE],
        mean_risk_score=mean,
        # Sending to every address: the expected share of hard bounces is the mean risk.
        projected_bounce_rate=mean,
    )


def _selection(
    items: list[EmailValidationBatchItem], target: float
) -> EmailValidationBudgetSelection:
    chosen = select_within_budget([(item.email, item.risk_score) for item in items], target)
    return EmailValidationBudgetSelection(
        target_bounce_rate=target,
        projected_bounce_rate=chosen.projected,
        included=list(chosen.included),
        excluded=list(chosen.excluded),
        included_count=len(chosen.included),
        excluded_count=len(chosen.excluded),
    )
