"""Shapes shared by every area: acknowledgements and expected-error results."""

from __future__ import annotations

from enum import Enum
from typing import NewType, TypeVar

import strawberry
from strawberry.types import get_object_definition
from strawberry.types.scalar import ScalarDefinition

T = TypeVar("T")

StringMap = NewType("StringMap", dict[str, str])
"""An object of string values (header fields by name). Pydantic reads the NewType as its
dict; GraphQL gets the ``StringMap`` scalar from :data:`SCALARS`."""


def _parse_string_map(value: object) -> dict[str, str]:
    if not isinstance(value, dict) or not all(
        isinstance(key, str) and isinstance(item, str) for key, item in value.items()
    ):
        raise ValueError("expected an object whose values are strings")
    return dict(value)


SCALARS: dict[object, ScalarDefinition] = {
    StringMap: strawberry.scalar(
        name="StringMap",
        description="An object whose values are strings.",
        serialize=dict,
        parse_value=_parse_string_map,
    )
}


def factory_defaults_in_graphql(cls: type[T]) -> type[T]:
    """Give GraphQL the default of each ``default_factory`` field (``[]`` for lists).

    Input lists use ``dataclasses.field(default_factory=list)`` because
    ``strawberry.field`` would hide their type from pydantic (which parses the
    REST body); Strawberry reads plain defaults but not factories, so without
    this such fields would be required in GraphQL while optional on REST.
    """
    for field in get_object_definition(cls, strict=True).fields:
        factory = cls.__dataclass_fields__[field.python_name].default_factory  # type: ignore[attr-defined]
        if callable(factory):
            field.default_value = factory()
    return cls


@strawberry.enum(name="ErrorCode")
class ErrorCode(Enum):
    """Why an operation was refused; clients branch on it."""

    INVALID = "invalid"
    NOT_FOUND = "not_found"
    CONFLICT = "conflict"
    UNAUTHENTICATED = "unauthenticated"
    FORBIDDEN = "forbidden"
    RATE_LIMITED = "rate_limited"
    UPSTREAM_FAILED = "upstream_failed"


@strawberry.type(name="OperationError", description="An expected failure of a mutation.")
class OperationError:
    code: ErrorCode
    message: str
    retry_after: int | None = strawberry.field(
        default=None, description="Seconds to wait, for RATE_LIMITED."
    )


@strawberry.type(
    name="ErrorResponse", description="The body of every REST error answer but 422's."
)
class ErrorResponse:
    """The body of every error answer but 422: `detail` says what went wrong."""

    # REST only: GraphQL answers with OperationError. api/errors.py builds it.
    detail: str


@strawberry.type(name="Done", description="A mutation that succeeded with nothing to return.")
class Done:
    message: str


@strawberry.type(name="Health")
class HealthResponse:
    status: str
    version: str
    mode: str
