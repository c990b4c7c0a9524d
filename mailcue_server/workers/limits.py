"""Limits the listeners read at each use, so a changed setting needs no restart."""

from __future__ import annotations

from collections.abc import Callable

# A fixed value, or a function returning the value in force now
# (``lambda: services.settings.max_message_size`` in the composition root).
Limit = int | Callable[[], int]


def current(limit: Limit) -> int:
    """The value of ``limit`` right now."""
    return limit if isinstance(limit, int) else limit()
