"""Hard-bounce risk: the score an address gets, the budget a batch fits, how good scores were.

Pure. The score is a probability that mail to the address hard-bounces. It
starts from what validation found (an address its server accepted rarely
bounces; one it refused nearly always does), and for the addresses the
server could not judge (catch-all, undetermined) from the hard-bounce rate
measured at the domain, shrunk toward a prior while the sample is small.
Batch evidence and the address's own history then move it.

Calibration compares issued scores with the outcomes that followed (Brier
score and a reliability table), which is what tells whether a score of 0.1
means one bounce in ten.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

LevelName = Literal["low", "medium", "high", "unknown"]
ActionName = Literal["send", "caution", "hold"]
SourceName = Literal["no_history", "exact_history", "domain_history"]

CATCH_ALL_PRIOR = 0.125
"""Hard-bounce rate assumed for an accept-all domain before any of its mail is measured."""
PRIOR_WEIGHT = 10.0
"""How many observations the prior is worth when blended with a domain's measured rate."""
BASE_RATES: dict[str, float] = {
    "valid": 0.02,
    "invalid": 0.97,
    "disposable": 0.30,
    "undetermined": 0.25,
    "catch_all": CATCH_ALL_PRIOR,
}
# Statuses where the recipient's server gave no clear answer, so history fills the gap.
_UNJUDGED = frozenset({"catch_all", "undetermined"})
LOW_BELOW = 0.05
MEDIUM_BELOW = 0.20
CALIBRATION_BINS = 10


@dataclass(frozen=True)
class DomainHistory:
    hard_bounces: int = 0
    observations: int = 0


@dataclass(frozen=True)
class RiskInputs:
    """What is known about one address when it is scored."""

    status: str
    domain: DomainHistory = DomainHistory()
    last_outcome: str | None = None  # the address's own latest outcome, if any
    matches_domain_pattern: bool | None = None
    permutation_variant: bool = False
    domain_suppressed: bool = False


@dataclass(frozen=True)
class Contribution:
    label: str
    delta: float  # in log-odds
    detail: str


@dataclass(frozen=True)
class Risk:
    score: float
    level: LevelName
    action: ActionName
    source: SourceName
    sample_size: int
    base_rate: float
    confidence: float
    explanation: str
    contributions: tuple[Contribution, ...] = field(default_factory=tuple)


def _logit(p: float) -> float:
    p = min(max(p, 1e-6), 1 - 1e-6)
    return math.log(p / (1 - p))


def _sigmoid(x: float) -> float:
    return 1 / (1 + math.exp(-x))


def assess(inputs: RiskInputs) -> Risk:
    """The hard-bounce probability of one address and what to do about it."""
    prior = BASE_RATES.get(inputs.status, BASE_RATES["undetermined"])
    history = inputs.domain
    base = prior
    source: SourceName = "no_history"
    if inputs.status in _UNJUDGED and history.observations:
        base = (history.hard_bounces + prior * PRIOR_WEIGHT) / (
            history.observations + PRIOR_WEIGHT
        )
        source = "domain_history"
    contributions = list(_adjustments(inputs))
    score = _sigmoid(_logit(base) + sum(c.delta for c in contributions))
    if inputs.last_outcome in ("hard_bounce", "delivered"):
        source = "exact_history"
        target = 0.95 if inputs.last_outcome == "hard_bounce" else 0.01
        moved = max(score, target) if inputs.last_outcome == "hard_bounce" else min(score, target)
        if moved != score:
            contributions.append(
                Contribution(
                    "exact_history",
                    round(_logit(moved) - _logit(score), 4),
                    f"mail to this address last ended as {inputs.last_outcome.replace('_', ' ')}",
                )
            )
        score = moved
    score = round(min(max(score, 0.001), 0.999), 4)
    level = _level(score, inputs.status, source)
    sample = history.observations if source == "domain_history" else 0
    return Risk(
        score=score,
        level=level,
        action=_action(level),
        source=source,
        sample_size=sample + (1 if source == "exact_history" else 0),
        base_rate=round(base, 4),
        confidence=_confidence(inputs.status, history.observations, source),
        explanation=_explain(inputs, score, base, source),
        contributions=tuple(contributions),
    )


def _adjustments(inputs: RiskInputs) -> list[Contribution]:
    found: list[Contribution] = []
    if inputs.permutation_variant:
        found.append(
            Contribution(
                "permutation_variant",
                0.9,
                "the batch holds other spellings of the same name at this domain",
            )
        )
    if inputs.matches_domain_pattern is True:
        found.append(
            Contribution("domain_pattern", -0.5, "follows the domain's naming convention")
        )
    elif inputs.matches_domain_pattern is False:
        found.append(Contribution("domain_pattern", 0.7, "breaks the domain's naming convention"))
    if inputs.domain_suppressed:
        found.append(
            Contribution("domain_suppressed", 1.5, "the domain is paused after too many bounces")
        )
    return found


def _level(score: float, status: str, source: SourceName) -> LevelName:
    if status == "undetermined" and source == "no_history":
        return "unknown"
    if score < LOW_BELOW:
        return "low"
    return "medium" if score < MEDIUM_BELOW else "high"


_ACTIONS: dict[str, ActionName] = {
    "low": "send",
    "medium": "caution",
    "high": "hold",
    "unknown": "caution",
}


def _action(level: LevelName) -> ActionName:
    return _ACTIONS[level]


def _confidence(status: str, observations: int, source: SourceName) -> float:
    if source == "exact_history" or status in ("valid", "invalid"):
        return 0.9
    return round(0.3 + 0.6 * observations / (observations + PRIOR_WEIGHT), 3)


def _explain(inputs: RiskInputs, score: float, base: float, source: SourceName) -> str:
    start = {
        "valid": "The recipient's server accepted the address",
        "invalid": "The address cannot receive mail",
        "disposable": "The address is on a disposable-mail domain",
        "catch_all": "The recipient's server accepts every address, so it cannot say",
        "undetermined": "The recipient's server gave no clear answer",
    }.get(inputs.status, "Nothing clear is known about the address")
    if source == "domain_history":
        measured = inputs.domain
        start += (
            f"; {measured.hard_bounces} of {measured.observations} recorded deliveries to "
            f"the domain hard-bounced (base rate {base:.1%})"
        )
    elif inputs.status in _UNJUDGED:
        start += f"; no deliveries to the domain are recorded (base rate {base:.1%})"
    return f"{start}. Estimated hard-bounce probability {score:.1%}."


# --- batches ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Selection:
    target: float
    projected: float
    included: tuple[str, ...]
    excluded: tuple[str, ...]


def select_within_budget(scored: Sequence[tuple[str, float]], target: float) -> Selection:
    """The largest set of addresses whose mean risk stays at or under ``target``.

    Taking addresses from the safest up maximises the count: each addition
    raises the running mean, so the first one that would break the budget
    ends the set. Both lists keep the input's order.
    """
    order = sorted(range(len(scored)), key=lambda i: scored[i][1])
    chosen: set[int] = set()
    total = 0.0
    for index in order:
        risk = scored[index][1]
        if (total + risk) / (len(chosen) + 1) > target + 1e-12:
            break
        chosen.add(index)
        total += risk
    projected = round(total / len(chosen), 4) if chosen else 0.0
    return Selection(
        target=target,
        projected=projected,
        included=tuple(email for i, (email, _) in enumerate(scored) if i in chosen),
        excluded=tuple(email for i, (email, _) in enumerate(scored) if i not in chosen),
    )


# --- calibration ------------------------------------------------------------------------------


@dataclass(frozen=True)
class CalibrationBin:
    lower: float
    upper: float
    count: int
    predicted_mean: float
    observed_rate: float


@dataclass(frozen=True)
class Calibration:
    sample_size: int
    brier_score: float | None
    mean_predicted: float | None
    observed_rate: float | None
    bins: tuple[CalibrationBin, ...]


def calibrate(pairs: Sequence[tuple[float, bool]]) -> Calibration:
    """Brier score and a reliability table of ``(issued score, hard-bounced)`` pairs.

    Bins are tenths of the score range; only bins that hold a pair are listed.
    """
    if not pairs:
        return Calibration(0, None, None, None, ())
    n = len(pairs)
    brier = sum((p - (1.0 if hit else 0.0)) ** 2 for p, hit in pairs) / n
    buckets: list[list[tuple[float, bool]]] = [[] for _ in range(CALIBRATION_BINS)]
    for p, hit in pairs:
        buckets[min(int(p * CALIBRATION_BINS), CALIBRATION_BINS - 1)].append((p, hit))
    bins = tuple(
        CalibrationBin(
            lower=round(i / CALIBRATION_BINS, 2),
            upper=round((i + 1) / CALIBRATION_BINS, 2),
            count=len(bucket),
            predicted_mean=round(sum(p for p, _ in bucket) / len(bucket), 4),
            observed_rate=round(sum(1 for _, hit in bucket if hit) / len(bucket), 4),
        )
        for i, bucket in enumerate(buckets)
        if bucket
    )
    return Calibration(
        sample_size=n,
        brier_score=round(brier, 4),
        mean_predicted=round(sum(p for p, _ in pairs) / n, 4),
        observed_rate=round(sum(1 for _, hit in pairs if hit) / n, 4),
        bins=bins,
    )


# --- suppression ------------------------------------------------------------------------------


def crosses_limit(history: DomainHistory, *, limit: float, min_observations: int) -> bool:
    """Whether a domain's measured hard-bounce rate is over the limit on enough mail."""
    if history.observations < max(min_observations, 1):
        return False
    return history.hard_bounces / history.observations > limit
