"""Opening the database, applying migrations and checking them against the models.

One Tortoise app, ``mailcue``, whose migrations live in
``mailcue_server.migrations``. The same migration files serve SQLite and
PostgreSQL: Tortoise's built-in migrations record operations, not SQL, and
render them for the engine at apply time.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
import pkgutil
from collections.abc import AsyncIterator, Sequence
from typing import TYPE_CHECKING, Any

from tortoise.connection import get_connection
from tortoise.context import TortoiseContext

if TYPE_CHECKING:
    from tortoise.backends.base.client import BaseDBAsyncClient
    from tortoise.migrations.writer import MigrationWriter

APP_LABEL = "mailcue"
MODELS_MODULES = (
    "mailcue_server.store.models",
    "mailcue_server.store.mail_models",
    "mailcue_server.store.gpg_models",
    "mailcue_server.store.domain_models",
    "mailcue_server.store.outbound_models",
    "mailcue_server.store.deliverability_models",
)
MIGRATIONS_MODULE = "mailcue_server.migrations"

log = logging.getLogger(__name__)

# Any fixed 64-bit number; all MailCue nodes of one database agree on it.
_MIGRATION_LOCK_KEY = 0x6D61696C637565


def normalise_url(url: str) -> str:
    """Accept the spellings users paste (``postgresql://``, ``postgresql+asyncpg://``)."""
    for prefix in ("postgresql+asyncpg://", "postgresql://", "postgres+asyncpg://"):
        if url.startswith(prefix):
            return "postgres://" + url[len(prefix) :]
    return url


def connection_name(url: str) -> str:
    """One connection name per engine.

    Tortoise caches each model's INSERT/UPDATE SQL process-wide by connection
    name and table (``EXECUTOR_CACHE``), so two engines opened in one process
    under the same name would share SQL of the wrong dialect. Model classes are
    process-wide too (their connection name is set by the last ``init``), so a
    process may switch engines but never use two at the same time; a server
    process only ever opens one.
    """
    return f"mailcue_{engine_name(url)}"


def _private_sqlite_file(url: str) -> None:
    """Create a SQLite file readable by its owner only before SQLite opens it.

    SQLite creates the file with the process umask (usually 0644: mail readable
    by every local user) and gives its -wal and -shm files the same mode.
    """
    if not url.startswith("sqlite://") or ":memory:" in url:
        return
    path = url.removeprefix("sqlite://").split("?", 1)[0]
    os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))  # no-op when it exists
    os.chmod(path, 0o600)


def tortoise_config(url: str) -> dict[str, Any]:
    """The Tortoise configuration for a database URL."""
    name = connection_name(url)
    return {
        "connections": {name: normalise_url(url)},
        "apps": {
            APP_LABEL: {
                "models": list(MODELS_MODULES),
                "default_connection": name,
                "migrations": MIGRATIONS_MODULE,
            }
        },
        "use_tz": True,
        "timezone": "UTC",
    }


def engine_name(url: str) -> str:
    """``postgresql`` or ``sqlite``, for logs and the production checklist."""
    return "postgresql" if normalise_url(url).startswith("postgres://") else "sqlite"


class Database:
    """An open Tortoise context for one server (or one test).

    ``open()`` enters the context in the calling task, so every task started
    from it afterwards (HTTP requests, protocol sessions) sees the same
    connections without any process-wide global.
    """

    def __init__(self, url: str) -> None:
        self.url = normalise_url(url)
        self.config = tortoise_config(self.url)
        self._ctx: TortoiseContext | None = None

    @property
    def engine(self) -> str:
        return engine_name(self.url)

    async def open(self) -> None:
        _private_sqlite_file(self.url)
        ctx = TortoiseContext()
        ctx.__enter__()
        await ctx.init(config=self.config)
        self._ctx = ctx

    async def ping(self) -> None:
        """One round trip, so a database that does not answer fails start-up at once."""
        await get_connection(connection_name(self.url)).execute_query("SELECT 1")

    async def close(self) -> None:
        if self._ctx is not None:
            await self._ctx.close_connections()
            self._ctx.__exit__(None, None, None)
            self._ctx = None

    async def migrate(self) -> list[str]:
        """Apply pending migrations; returns the names applied."""
        applied: list[str] = []

        def progress(event: str, app_label: str, name: str) -> None:
            if event == "apply_done":
                applied.append(f"{app_label}.{name}")
                log.info("applied migration %s.%s", app_label, name)

        connection = get_connection(connection_name(self.url))
        if await all_migrations_recorded(connection):
            return applied
        # Loaded only when something is to be applied (a first start, an upgrade).
        from tortoise.migrations.executor import MigrationExecutor

        executor = MigrationExecutor(connection, self._apps_config())
        async with self._migration_lock():
            await executor.migrate(progress=progress)
        return applied

    @contextlib.asynccontextmanager
    async def _migration_lock(self) -> AsyncIterator[None]:
        """On PostgreSQL, nodes starting together migrate one after the other.

        A session-level advisory lock on a connection of its own: the second
        node waits, then finds nothing left to apply. SQLite is one process.
        """
        if self.engine != "postgresql":
            yield
            return
        import asyncpg

        lock = await asyncpg.connect(self.url)
        try:
            await lock.execute("SELECT pg_advisory_lock($1)", _MIGRATION_LOCK_KEY)
            yield
        finally:
            await lock.close()  # closing the session releases the lock

    async def pending_model_changes(self) -> Sequence[str]:
        """Names of migrations ``makemigrations`` would write now (empty = in sync)."""
        return [writer.name for writer in await self.migration_writers()]

    async def migration_writers(self) -> list[MigrationWriter]:
        """Writers for the migrations the models need beyond the committed ones."""
        if self._ctx is None or self._ctx.apps is None:
            raise RuntimeError("database is not open")
        from tortoise.migrations.autodetector import MigrationAutodetector

        detector = MigrationAutodetector(self._ctx.apps, self._apps_config())
        return await detector.changes()

    def _apps_config(self) -> dict[str, dict[str, Any]]:
        apps: dict[str, dict[str, Any]] = self.config["apps"]
        return apps


def committed_migrations() -> list[str]:
    """The migration modules shipped in :data:`MIGRATIONS_MODULE`, by name."""
    package = importlib.import_module(MIGRATIONS_MODULE)
    return sorted(
        info.name for info in pkgutil.iter_modules(package.__path__) if info.name[:1].isdigit()
    )


async def all_migrations_recorded(connection: BaseDBAsyncClient) -> bool:
    """Whether Tortoise's record lists every committed migration: a restart's usual case.

    One query answers it, where the executor would import every migration,
    build their graph and define its record model (Tortoise reads its own
    source for that): a good part of a warm start. Any doubt (no record table
    yet, an unreadable one) sends the caller the full way, which applies or
    reports properly.
    """
    try:
        _, rows = await connection.execute_query(_APPLIED_SQL)
    except Exception:
        return False
    applied = {(row["app"], row["name"]) for row in rows}
    return all((APP_LABEL, name) in applied for name in committed_migrations())


_APPLIED_SQL = 'SELECT "app", "name" FROM "tortoise_migrations"'
