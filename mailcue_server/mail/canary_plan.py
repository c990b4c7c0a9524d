"""Staged sends: which recipients go first, and what their bounces decide.

Pure. Mail that has left cannot be recalled, so a staged send commits a small
sample per recipient domain first. After the hold window (or when asked),
each domain whose sample hard-bounced more than the threshold allows is
blocked and the rest of the batch at the other domains is released.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

SAMPLE = "sample"
HELD = "held"
# Sample recipients that went out; those skipped before sending prove nothing.
_SENT_STATES = frozenset({"sent", "delivered", "hard_bounce", "soft_bounce"})


def plan_roles(domains: Sequence[str], sample_size: int) -> list[str]:
    """For recipients at ``domains`` (in order): the first ``sample_size`` per domain sample."""
    seen: dict[str, int] = defaultdict(int)
    roles: list[str] = []
    for domain in domains:
        seen[domain] += 1
        roles.append(SAMPLE if seen[domain] <= sample_size else HELD)
    return roles


@dataclass(frozen=True)
class Member:
    domain: str
    role: str
    status: str


@dataclass(frozen=True)
class DomainVerdict:
    domain: str
    release: bool
    reason: str


def judge_domains(
    members: Iterable[Member], *, threshold: float, suppressed: frozenset[str]
) -> list[DomainVerdict]:
    """One verdict per domain with held recipients still pending, in order of appearance."""
    sampled: dict[str, list[str]] = defaultdict(list)
    held: list[str] = []
    for member in members:
        if member.role == SAMPLE and member.status in _SENT_STATES:
            sampled[member.domain].append(member.status)
        elif member.role == HELD and member.status == "pending" and member.domain not in held:
            held.append(member.domain)
    verdicts: list[DomainVerdict] = []
    for domain in held:
        statuses = sampled.get(domain, [])
        hard = statuses.count("hard_bounce")
        if domain in suppressed:
            verdicts.append(DomainVerdict(domain, False, f"{domain} is suppressed"))
        elif not statuses:
            verdicts.append(DomainVerdict(domain, False, f"no sample reached {domain}"))
        elif hard / len(statuses) > threshold:
            verdicts.append(
                DomainVerdict(
                    domain,
                    False,
                    f"{hard} of {len(statuses)} sampled at {domain} hard-bounced "
                    f"({hard / len(statuses):.0%} > {threshold:.0%})",
                )
            )
        else:
            verdicts.append(
                DomainVerdict(
                    domain, True, f"{hard} of {len(statuses)} sampled at {domain} hard-bounced"
                )
            )
    return verdicts


def summarise(verdicts: Sequence[DomainVerdict]) -> tuple[bool, str]:
    """``(released, reason)`` of the whole send: released when any domain was."""
    if not verdicts:
        return True, "Every recipient was in the sample; nothing was held"
    released = [v for v in verdicts if v.release]
    blocked = [v for v in verdicts if not v.release]
    parts = []
    if released:
        parts.append("released " + ", ".join(v.domain for v in released))
    if blocked:
        parts.append("blocked: " + "; ".join(v.reason for v in blocked))
    text = "; ".join(parts)
    return bool(released), text[0].upper() + text[1:]
