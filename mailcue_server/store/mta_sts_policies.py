"""The MTA-STS policy cache of recipient domains (RFC 8461 section 5.1).

A fetched policy is kept until its ``max_age`` runs out, shared by every node,
so a TXT record that vanishes does not switch a protected domain back to
plaintext. The outbound worker's ``workers/outbound/mta_sts.py`` fills and reads it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from tortoise.exceptions import IntegrityError

from mailcue_server.store.outbound_models import MtaStsPolicyRecord


@dataclass(frozen=True, slots=True)
class CachedPolicy:
    """A recipient domain's MTA-STS policy as fetched, with the id its TXT record announced."""

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
