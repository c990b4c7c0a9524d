"""Shapes shared by every area: acknowledgements and expected-error results."""

from __future__ import annotations

from enum import Enum

import strawberry


@strawberry.enum(name="ErrorCode")
class ErrorCode(Enum):
    """Why an operation was refused; clients branch on it."""

    INVALID = "invalid"
    NOT_FOUND = "not_found"
    CONFLICT = "conflict"
    UNAUTHENTICATED = "unauthenticated"
    FORBIDDEN = "forbidden"
    RATE_LIMITED = "rate_limited"


@strawberry.type(name="OperationError", description="An expected failure of a mutation.")
class OperationError:
    code: ErrorCode
    message: str
    retry_after: int | None = strawberry.field(
        default=None, description="Seconds to wait, for RATE_LIMITED."
    )


@strawberry.type(name="Done", description="A mutation that succeeded with nothing to return.")
class Done:
    message: str


@strawberry.type(name="Health")
class HealthResponse:
    status: str
    version: str
    mode: str
