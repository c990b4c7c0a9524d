"""Ids from the outside world, read as the UUIDs our primary keys are.

A path such as ``/auth/users/abc`` names no row. SQLite simply finds none;
PostgreSQL refuses to compare a UUID column with text that is not one (a
500), so lookups parse the id first and treat a malformed one as unknown.
"""

from __future__ import annotations

from uuid import UUID


def uuid_or_none(value: UUID | str) -> UUID | None:
    """``value`` as a UUID, or None when it is not one."""
    if isinstance(value, UUID):
        return value
    try:
        return UUID(value)
    except (ValueError, TypeError, AttributeError):
        return None
