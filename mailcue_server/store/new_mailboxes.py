"""Mailboxes made by their first mail: many at once, in one transaction, without model instances.

Test mode makes a mailbox for each new recipient, and test suites give each
test an address of its own, so the SMTP hot path often meets dozens of new
addresses in one group commit. Made through the ORM one by one, each cost a
transaction of five round trips between the event loop and the database
(about 1.7 ms of the loop each, measured with three per commit). Here the
rows of every new mailbox and its default folders are bound by hand and the
whole transaction is one call into SQLite's thread (on PostgreSQL, one
transaction of a few statements), which also answers the INBOX ids the
delivery needs next.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.backends.sqlite.client import SqliteClient
from tortoise.exceptions import IntegrityError, OperationalError
from tortoise.models import Model

from mailcue_server.errors import Invalid
from mailcue_server.events.bus import Event, EventBus, EventType, publish_quietly
from mailcue_server.mail.addresses import canonical_address
from mailcue_server.store import uids
from mailcue_server.store.mail_models import DEFAULT_FOLDERS, INBOX, Folder, Mailbox


@dataclass(frozen=True, slots=True)
class Made:
    """What :func:`make_mailboxes` did: the mailboxes it made, and every INBOX it found."""

    created: tuple[str, ...]
    inboxes: dict[str, int]


class _Rows:
    """The INSERT of one model's rows, and its values bound from field names."""

    def __init__(self, db: BaseDBAsyncClient, model: type[Model], *, ignore_conflicts: bool):
        executor = db.executor_class(model=model, db=db)
        self.columns = tuple(executor.regular_columns)
        sql = executor.insert_query
        if ignore_conflicts:  # a plain INSERT (no generated key, so no RETURNING) on both engines
            sql += " ON CONFLICT DO NOTHING"
        self.sql = sql
        self._model = model
        fields = model._meta.fields_map
        self._fields = [fields[name] for name in self.columns]

    def row(self, values: dict[str, Any]) -> list[Any]:
        row = []
        for field in self._fields:
            if field.model_field_name in values:
                value = values[field.model_field_name]
            else:
                value = field.default() if callable(field.default) else field.default
            row.append(field.to_db_value(value, self._model))
        return row


def _marks(sqlite: bool, count: int, first: int = 1) -> str:
    return ", ".join("?" if sqlite else f"${n}" for n in range(first, first + count))


async def make_mailboxes(addresses: Iterable[str], *, bus: EventBus) -> Made:
    """Make a mailbox, with its default folders, for each address that has none.

    Invalid addresses are skipped. A mailbox a concurrent delivery made first
    stays its maker's. ``mailbox.created`` is published, after the commit,
    for each mailbox made here.
    """
    wanted: dict[str, UUID] = {}
    for address in addresses:
        try:
            wanted[canonical_address(address).strip().lower()] = uuid4()
        except Invalid:
            continue
    if not wanted:
        return Made((), {})
    db = Mailbox._meta.db
    sqlite = db.capabilities.dialect == "sqlite"
    now = datetime.now(UTC)
    # A new mailbox has handed out no UIDVALIDITY: its folders start at the clock.
    first = int(time.time())
    mailbox_rows = _Rows(db, Mailbox, ignore_conflicts=True)
    new_rows = [
        mailbox_rows.row(
            {
                "id": key,
                "address": address,
                "last_uid_validity": first + len(DEFAULT_FOLDERS) - 1,
                "created_at": now,
            }
        )
        for address, key in wanted.items()
    ]
    folder_rows = _Rows(db, Folder, ignore_conflicts=False)
    names = sorted(wanted)
    owners = f'SELECT "address", "id" FROM "mailboxes" WHERE "address" IN ({_marks(sqlite, len(names))})'  # noqa: S608,E501 - placeholders only
    join = 'FROM "folders" f JOIN "mailboxes" m ON m."id" = f."mailbox_id"'
    where = f'f."name" = {_marks(sqlite, 1)} AND m."address" IN ({_marks(sqlite, len(names), 2)})'
    inboxes = f'SELECT m."address", f."id" {join} WHERE {where}'

    def folders_of(ours: Sequence[str]) -> list[list[Any]]:
        return [
            folder_rows.row(
                {
                    "mailbox_id": wanted[address],
                    "name": name,
                    "special_use": use,
                    "uid_validity": first + i,
                    "created_at": now,
                }
            )
            for address in ours
            for i, (name, use) in enumerate(DEFAULT_FOLDERS)
        ]

    def ours_of(rows: Iterable[Sequence[Any]]) -> list[str]:
        return sorted(str(address) for address, key in rows if str(key) == str(wanted[address]))

    if isinstance(db, SqliteClient):

        def transaction(connection: sqlite3.Connection) -> tuple[list[str], list[Any]]:
            connection.execute("BEGIN IMMEDIATE")
            try:
                connection.executemany(mailbox_rows.sql, new_rows)
                ours = ours_of(connection.execute(owners, names).fetchall())
                connection.executemany(folder_rows.sql, folders_of(ours))
                found = connection.execute(inboxes, [INBOX, *names]).fetchall()
                connection.execute("COMMIT")
            except BaseException:
                if connection.in_transaction:
                    connection.execute("ROLLBACK")
                raise
            return ours, found

        async with db.acquire_connection() as connection:
            try:
                # As message_rows._insert_sqlite: one call on aiosqlite's thread.
                ours, found = await connection._execute(lambda: transaction(connection._conn))
            except sqlite3.IntegrityError as exc:
                raise IntegrityError(exc) from exc
            except sqlite3.OperationalError as exc:
                raise OperationalError(exc) from exc
    else:
        async with uids.write_transaction() as connection:
            await connection.execute_many(mailbox_rows.sql, new_rows)
            owned = await connection.execute_query_dict(owners, names)
            ours = ours_of((row["address"], row["id"]) for row in owned)
            if ours:
                await connection.execute_many(folder_rows.sql, folders_of(ours))
            rows = await connection.execute_query_dict(inboxes, [INBOX, *names])
            found = [(row["address"], row["id"]) for row in rows]
    await publish_quietly(
        bus,
        [
            Event(EventType.MAILBOX_CREATED, address, data={"mailbox_id": str(wanted[address])})
            for address in ours
        ],
    )
    return Made(tuple(ours), {str(address): int(folder_id) for address, folder_id in found})
