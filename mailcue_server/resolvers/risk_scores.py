"""Scoring validated addresses against the caller's delivery history, and keeping the scores.

Single and batch validation both end here: each answer gets a hard-bounce
probability from ``mail/bounce_risk.py`` fed with the user's measured bounce
rate at the domain, the address's own last outcome and (for batches) what
the batch says. The score issued is remembered per user and address, so an
outcome reported later can be compared with it (calibration).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from uuid import UUID

from mailcue_server.mail.batch_evidence import Evidence
from mailcue_server.mail.bounce_risk import DomainHistory, Risk, RiskInputs, assess
from mailcue_server.resolvers.context import Context
from mailcue_server.schema.types.validation import (
    MAX_ADDRESS_LENGTH,
    EmailValidationCatchAllRisk,
    EmailValidationResponse,
    EmailValidationRiskContribution,
    RecommendedAction,
    RiskLevel,
    RiskSource,
)
from mailcue_server.store import deliverability

HISTORY_DAYS = 30
"""How far back a domain's measured bounce rate looks."""


def _key(result: EmailValidationResponse) -> str:
    """The address as history knows it; "" for text too long to be one (nothing to look up)."""
    key = result.email.strip().lower()
    return key if len(key) <= MAX_ADDRESS_LENGTH else ""


def _domain(result: EmailValidationResponse) -> str:
    return (result.syntax.domain or "").lower()


async def score_results(
    ctx: Context,
    user_id: UUID,
    results: Sequence[EmailValidationResponse],
    evidence: Sequence[Evidence] | None = None,
) -> list[Risk]:
    """One risk per result (same order), remembered as the scores issued to ``user_id``."""
    now = ctx.now()
    domains = {_domain(r) for r in results if r.syntax.is_valid}
    histories = await deliverability.domain_histories(
        user_id, domains, now - timedelta(days=HISTORY_DAYS)
    )
    last = await deliverability.last_outcomes(user_id, (_key(r) for r in results if _key(r)))
    suppressed = await deliverability.suppressed_among(user_id, domains, now)
    risks: list[Risk] = []
    for index, result in enumerate(results):
        found = evidence[index] if evidence is not None else Evidence()
        risks.append(
            assess(
                RiskInputs(
                    status=result.status.value,
                    domain=histories.get(_domain(result), DomainHistory()),
                    last_outcome=last.get(_key(result)),
                    matches_domain_pattern=found.matches_domain_pattern,
                    permutation_variant=found.permutation_variant,
                    domain_suppressed=_domain(result) in suppressed,
                )
            )
        )
    issued = {_key(r): risk.score for r, risk in zip(results, risks, strict=True) if _key(r)}
    await deliverability.save_scores(user_id, issued, now)
    return risks


def catch_all_risk(risk: Risk) -> EmailValidationCatchAllRisk:
    """The contract's ``catch_all_risk`` section for a score."""
    return EmailValidationCatchAllRisk(
        score=risk.score,
        level=RiskLevel(risk.level),
        recommended_action=RecommendedAction(risk.action),
        source=RiskSource(risk.source),
        sample_size=risk.sample_size,
        explanation=risk.explanation,
        base_rate=risk.base_rate,
        confidence=risk.confidence,
        contributions=[
            EmailValidationRiskContribution(label=c.label, delta=c.delta, detail=c.detail)
            for c in risk.contributions
        ],
    )
