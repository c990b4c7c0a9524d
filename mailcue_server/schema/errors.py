"""GraphQL's mapping of domain errors: union results for mutations, coded errors for queries.

Expected failures of a mutation come back as an ``OperationError`` member of
its result union (clients branch on ``__typename``); a query that fails raises
a GraphQL error whose ``extensions.code`` names the reason. Anything else is
masked by the schema and logged by the HTTP edge.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import TypeVar

from graphql import GraphQLError

from mailcue_server.errors import (
    Conflict,
    Forbidden,
    Invalid,
    MailcueError,
    NotFound,
    RateLimited,
    Unauthenticated,
    UpstreamFailed,
)
from mailcue_server.schema.types.common import Done, ErrorCode, OperationError

T = TypeVar("T")

_CODES: tuple[tuple[type[MailcueError], ErrorCode], ...] = (
    (Invalid, ErrorCode.INVALID),
    (NotFound, ErrorCode.NOT_FOUND),
    (Conflict, ErrorCode.CONFLICT),
    (Unauthenticated, ErrorCode.UNAUTHENTICATED),
    (Forbidden, ErrorCode.FORBIDDEN),
    (RateLimited, ErrorCode.RATE_LIMITED),
    (UpstreamFailed, ErrorCode.UPSTREAM_FAILED),
)


def error_code(exc: MailcueError) -> ErrorCode:
    for kind, code in _CODES:
        if isinstance(exc, kind):
            return code
    return ErrorCode.INVALID


def to_operation_error(exc: MailcueError) -> OperationError:
    retry = exc.retry_after if isinstance(exc, RateLimited) else None
    return OperationError(code=error_code(exc), message=exc.message, retry_after=retry)


async def attempt(call: Awaitable[T]) -> T | OperationError:
    """Run a mutation's resolver; expected failures become an ``OperationError``."""
    try:
        return await call
    except MailcueError as exc:
        return to_operation_error(exc)


async def attempt_done(call: Awaitable[str | None], done: str = "OK") -> Done | OperationError:
    """Like :func:`attempt` for resolvers that return a message (or nothing)."""
    result = await attempt(call)
    if isinstance(result, OperationError):
        return result
    return Done(message=result or done)


async def query(call: Awaitable[T]) -> T:
    """Run a query's resolver; expected failures become coded GraphQL errors."""
    try:
        return await call
    except MailcueError as exc:
        raise GraphQLError(exc.message, extensions={"code": error_code(exc).name}) from exc
