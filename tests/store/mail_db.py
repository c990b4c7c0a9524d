"""The ``db`` fixture of the mail store tests: SQLite always, PostgreSQL when reachable.

Test modules load it with ``pytest_plugins = ["mail_db"]``: a ``conftest.py``
here would shadow ``tests/conftest.py``, which other tests import by that name.

Both engines go through the real migrations. SQLite gets a fresh file per
test. PostgreSQL gets one database per test module, migrated on first use and
emptied before each test: a fresh database per test costs more than the test.
A process uses one engine at a time (``store/db.py``, ``connection_name``),
and these tests open one database at a time.

pytest-asyncio 1.5 runs a test in the context its async fixtures left behind,
so the Tortoise context that ``Database.open()`` enters here is the test's.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path

import pytest
import pytest_asyncio
from tortoise.connection import get_connection

from mailcue_server.store.db import Database, connection_name
from services import fresh_postgres_database

MAIL_TABLES = "messages, folders, mailboxes, users"


class _SessionPostgres:
    """One PostgreSQL database for a test module, created when a test first asks."""

    def __init__(self) -> None:
        self.stack = AsyncExitStack()
        self.url: str | None = None

    async def get(self) -> str:
        if self.url is None:
            self.url = await self.stack.enter_async_context(fresh_postgres_database())
        return self.url


@pytest_asyncio.fixture(scope="module")
async def session_postgres() -> AsyncIterator[_SessionPostgres]:
    holder = _SessionPostgres()
    yield holder
    await holder.stack.aclose()


@pytest_asyncio.fixture(params=["sqlite", "postgresql"])
async def db(
    request: pytest.FixtureRequest, tmp_path: Path, session_postgres: _SessionPostgres
) -> AsyncIterator[Database]:
    """An open, migrated, empty database of the parametrised engine."""
    if request.param == "sqlite":
        url = f"sqlite://{tmp_path / 'mail.db'}?journal_mode=WAL&synchronous=NORMAL"
    else:
        url = await session_postgres.get()
    database = Database(url)
    await database.open()
    try:
        await database.migrate()
        if request.param == "postgresql":
            await get_connection(connection_name(url)).execute_script(
                f"TRUNCATE {MAIL_TABLES} RESTART IDENTITY CASCADE"
            )
        yield database
    finally:
        await database.close()
