"""Validating a batch of addresses: the request, one item per address, totals and budget.

Class names are the REST contract's schema names (``EmailValidationBatch*``);
GraphQL gets shorter names. Plain defaults, not ``strawberry.field``: that
would hide the field types from pydantic, which parses the REST body.
"""

from __future__ import annotations

from typing import Annotated

import strawberry
from pydantic import Field

from mailcue_server.schema.types.validation import (
    MAX_ADDRESS_LENGTH,
    EmailValidationCatchAllRisk,
    RecommendedAction,
    ValidationStatus,
    ValidationVerdict,
)

MAX_BATCH = 1000


@strawberry.input(
    name="EmailBatchValidationInput",
    description="Addresses to check together (1 to 1,000). With `targetBounceRate` (0 to 1) "
    "the answer also names the largest subset whose expected bounce rate stays under it. "
    "`includeDomainSignals` false leaves out what the batch says about each domain's "
    "naming convention.",
)
class EmailValidationBatchRequest:
    emails: Annotated[
        list[Annotated[str, Field(max_length=MAX_ADDRESS_LENGTH)]],
        Field(min_length=1, max_length=MAX_BATCH),
    ]
    target_bounce_rate: Annotated[float | None, Field(ge=0, le=1)] = None
    include_domain_signals: bool = True


@strawberry.type(
    name="EmailBatchValidationItem",
    description="One address of a batch. `riskScore` is the estimated hard-bounce "
    "probability; `matchesDomainPattern` says whether the address follows the naming "
    "convention of its domain's other addresses in the batch (null: too few to tell); "
    "`permutationVariant` is true when the batch holds other spellings of the same name at "
    "the domain (typical of guessed addresses).",
)
class EmailValidationBatchItem:
    email: str
    status: ValidationStatus
    verdict: ValidationVerdict
    deliverable: bool | None
    reason: str
    risk_score: float
    recommended_action: RecommendedAction
    provider_id: str | None = None
    matches_domain_pattern: bool | None = None
    permutation_variant: bool = False
    catch_all_risk: EmailValidationCatchAllRisk | None = None
    target_latency_ms: float | None = None
    control_median_latency_ms: float | None = None
    error: str | None = None


@strawberry.type(name="EmailBatchValidationSummary")
class EmailValidationBatchSummary:
    total: int
    valid: int
    invalid: int
    catch_all: int
    undetermined: int
    disposable: int
    mean_risk_score: float
    projected_bounce_rate: float


@strawberry.type(
    name="BounceBudgetSelection",
    description="The largest set of the batch whose mean risk stays at or under the target.",
)
class EmailValidationBudgetSelection:
    target_bounce_rate: float
    projected_bounce_rate: float
    included: list[str]
    excluded: list[str]
    included_count: int
    excluded_count: int


@strawberry.type(name="EmailBatchValidation")
class EmailValidationBatchResponse:
    results: list[EmailValidationBatchItem]
    summary: EmailValidationBatchSummary
    selection: EmailValidationBudgetSelection | None = None
