"""The Schema object: every area's Query and Mutation pieces merged in one place."""

from __future__ import annotations

import strawberry
from strawberry.extensions import MaskErrors
from strawberry.tools import merge_types

from mailcue_server.errors import MailcueError
from mailcue_server.schema.auth import AuthMutation, AuthQuery
from mailcue_server.schema.system import SystemQuery

Query = merge_types("Query", (SystemQuery, AuthQuery))
Mutation = merge_types("Mutation", (AuthMutation,))


def _is_unexpected(error: Exception) -> bool:
    """Mask everything but domain errors and GraphQL's own validation errors."""
    original = getattr(error, "original_error", None)
    return original is not None and not isinstance(original, MailcueError)


def build_schema() -> strawberry.Schema:
    return strawberry.Schema(
        query=Query,
        mutation=Mutation,
        extensions=[lambda: MaskErrors(should_mask_error=_is_unexpected)],
    )
