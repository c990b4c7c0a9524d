"""Queries on a user's delivery history: issued scores, outcomes and suppressed domains.

Every function takes the user (tenant) it works for; no query crosses users
except :func:`calibration_pairs` with ``user_id=None`` (the global figures).
Addresses are stored lowercased, domains in the form the address carries.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from tortoise.exceptions import IntegrityError
from tortoise.functions import Count
from tortoise.transactions import in_transaction

from mailcue_server.mail.bounce_risk import DomainHistory
from mailcue_server.store.deliverability_models import (
    DeliveryOutcome,
    DomainSuppression,
    Outcome,
    ValidationScore,
)

UserId = UUID | str


@dataclass(frozen=True)
class NewOutcome:
    """One outcome to record."""

    address: str
    outcome: Outcome
    source: str
    smtp_code: int | None = None
    enhanced_status: str | None = None
    diagnostic: str = ""


def domain_of(address: str) -> str:
    return address.rpartition("@")[2].lower()


# --- issued scores ----------------------------------------------------------------------------


async def save_scores(user_id: UserId, scores: Mapping[str, float], now: datetime) -> None:
    """Remember the latest score issued to the user for each address."""
    for address, score in scores.items():
        key = address.lower()
        updated = await ValidationScore.filter(user_id=user_id, address=key).update(
            score=score, scored_at=now
        )
        if updated:
            continue
        try:
            await ValidationScore.create(user_id=user_id, address=key, score=score, scored_at=now)
        except IntegrityError:  # saved concurrently: ours is as recent
            await ValidationScore.filter(user_id=user_id, address=key).update(
                score=score, scored_at=now
            )


async def latest_scores(user_id: UserId, addresses: Iterable[str]) -> dict[str, float]:
    keys = list({a.lower() for a in addresses})
    if not keys:
        return {}
    rows = await ValidationScore.filter(user_id=user_id, address__in=keys).only("address", "score")
    return {row.address: row.score for row in rows}


# --- outcomes ---------------------------------------------------------------------------------


async def add_outcomes(user_id: UserId, outcomes: Sequence[NewOutcome], now: datetime) -> int:
    """Store outcomes with the score last issued for each address; returns how many."""
    if not outcomes:
        return 0
    scores = await latest_scores(user_id, (o.address for o in outcomes))
    rows = [
        DeliveryOutcome(
            user_id=user_id,
            address=o.address.lower(),
            domain=domain_of(o.address),
            outcome=o.outcome.value,
            smtp_code=o.smtp_code,
            enhanced_status=o.enhanced_status,
            diagnostic=o.diagnostic,
            source=o.source,
            predicted_score=scores.get(o.address.lower()),
            created_at=now,
        )
        for o in outcomes
    ]
    async with in_transaction():
        await DeliveryOutcome.bulk_create(rows)
    return len(rows)


async def domain_histories(
    user_id: UserId, domains: Iterable[str], since: datetime
) -> dict[str, DomainHistory]:
    """Hard bounces and all outcomes per domain since ``since`` (absent domains: none)."""
    wanted = list({d.lower() for d in domains})
    if not wanted:
        return {}
    rows = (
        await DeliveryOutcome.filter(user_id=user_id, domain__in=wanted, created_at__gte=since)
        .annotate(n=Count("id"))
        .group_by("domain", "outcome")
        .values("domain", "outcome", "n")
    )
    hard: dict[str, int] = {}
    total: dict[str, int] = {}
    for row in rows:
        domain = row["domain"]
        total[domain] = total.get(domain, 0) + row["n"]
        if row["outcome"] == Outcome.HARD_BOUNCE.value:
            hard[domain] = hard.get(domain, 0) + row["n"]
    return {d: DomainHistory(hard.get(d, 0), total[d]) for d in total}


async def last_outcomes(user_id: UserId, addresses: Iterable[str]) -> dict[str, str]:
    """The latest outcome recorded for each address that has one."""
    keys = list({a.lower() for a in addresses})
    if not keys:
        return {}
    rows = (
        await DeliveryOutcome.filter(user_id=user_id, address__in=keys)
        .order_by("created_at", "id")
        .values_list("address", "outcome")
    )
    return dict(rows)  # later rows win


async def calibration_pairs(user_id: UserId | None, since: datetime) -> list[tuple[float, bool]]:
    """``(issued score, hard-bounced)`` for outcomes since ``since`` that had a score.

    Soft bounces are left out: they say the address exists but could not take
    mail then, which is neither outcome the score predicts.
    """
    query = DeliveryOutcome.filter(
        created_at__gte=since,
        predicted_score__isnull=False,
        outcome__in=[Outcome.DELIVERED.value, Outcome.HARD_BOUNCE.value],
    )
    if user_id is not None:
        query = query.filter(user_id=user_id)
    rows = await query.values_list("predicted_score", "outcome")
    return [(float(score), outcome == Outcome.HARD_BOUNCE.value) for score, outcome in rows]


# --- suppressed domains -----------------------------------------------------------------------


async def suppress(
    user_id: UserId,
    domain: str,
    *,
    reason: str,
    history: DomainHistory,
    now: datetime,
    expires_at: datetime,
) -> None:
    """Pause ``domain`` for the user until ``expires_at`` (a new pause if the old one ended)."""
    key = domain.lower()
    current = await DomainSuppression.get_or_none(user_id=user_id, domain=key)
    if current is None:
        try:
            await DomainSuppression.create(
                user_id=user_id,
                domain=key,
                created_at=now,
                reason=reason,
                hard_bounces=history.hard_bounces,
                observations=history.observations,
                expires_at=expires_at,
            )
            return
        except IntegrityError:  # paused concurrently: update that row below
            current = await DomainSuppression.get(user_id=user_id, domain=key)
    lapsed = current.expires_at is not None and current.expires_at <= now
    await DomainSuppression.filter(id=current.id).update(
        created_at=now if lapsed else current.created_at,
        reason=reason,
        hard_bounces=history.hard_bounces,
        observations=history.observations,
        expires_at=expires_at,
    )


async def active_suppressions(user_id: UserId, now: datetime) -> list[DomainSuppression]:
    """The user's paused domains that have not expired, newest first."""
    rows = await DomainSuppression.filter(user_id=user_id).order_by("-created_at", "domain")
    return [row for row in rows if row.expires_at is None or row.expires_at > now]


async def suppressed_among(user_id: UserId, domains: Iterable[str], now: datetime) -> set[str]:
    wanted = list({d.lower() for d in domains})
    if not wanted:
        return set()
    rows = await DomainSuppression.filter(user_id=user_id, domain__in=wanted)
    return {row.domain for row in rows if row.expires_at is None or row.expires_at > now}
