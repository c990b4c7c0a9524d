"""Named locks for work that one task at a time may do, on this node and on every node.

Two retention workers trimming the same mailbox each counted the excess
before the other deleted, and together removed more than the limit allows.
:func:`exclusive` lets exactly one of them go on: within a process by name,
across nodes sharing PostgreSQL by a session advisory lock held on one
pooled connection for the length of the block (a transaction-scoped lock
would put the work's own transactions inside it). SQLite serves one process,
so the process-wide name is the whole lock there.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from mailcue_server.store.mail_models import Mailbox

# Names held by tasks of this process; a process-wide fact, so a module-level set.
_held: set[str] = set()


def _advisory_key(name: str) -> int:
    """A signed 64-bit key for ``pg_try_advisory_lock`` derived from the name."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


@asynccontextmanager
async def exclusive(name: str) -> AsyncIterator[bool]:
    """Yield True when this task now holds ``name`` (until the block ends), or False at
    once when another task or node holds it: the caller then skips the work."""
    if name in _held:
        yield False
        return
    _held.add(name)
    try:
        client = Mailbox._meta.db
        if client.capabilities.dialect != "postgres":
            yield True
            return
        key = _advisory_key(name)
        async with client.acquire_connection() as connection:
            if not await connection.fetchval("SELECT pg_try_advisory_lock($1)", key):
                yield False
                return
            try:
                yield True
            finally:
                await connection.execute("SELECT pg_advisory_unlock($1)", key)
    finally:
        _held.discard(name)
