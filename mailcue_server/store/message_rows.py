"""Building message rows and their ``email.received`` events: shared by ingest and append.

:func:`new_row` makes a model instance (one message, :func:`store.appends.append`).
The SMTP hot path skips the instances: :class:`RowInsert` is Tortoise's own
INSERT statement for the table and :meth:`RowInsert.values` the list it binds,
converted by the same field objects, with the UID and mod-sequence filled in
once the folder is locked; :func:`insert_into_inboxes` writes a batch of them.
"""

from __future__ import annotations

import functools
import operator
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.backends.sqlite.client import SqliteClient
from tortoise.exceptions import IntegrityError, OperationalError
from tortoise.fields import Field, JSONField

from mailcue_server.events.bus import Event, EventType
from mailcue_server.mail.index import IndexFields
from mailcue_server.store import uids
from mailcue_server.store.mail_models import Message

MAX_MESSAGE_ID = 255


@dataclass(frozen=True, slots=True)
class Stored:
    """Where a message landed: enough for APPENDUID/COPYUID (RFC 4315) and the REST ``uid``."""

    mailbox: str
    folder: str
    uid: int
    uid_validity: int


def new_row(
    folder: uids.Reservation,
    uid: int,
    raw: bytes,
    fields: IndexFields,
    flags: int,
    keywords: str,
    internal_date: datetime,
) -> Message:
    """A message stored without an envelope (IMAP APPEND, inject)."""
    values = _values(folder.folder_id, raw, fields, flags, keywords, internal_date, None)
    return Message(uid=uid, modseq=folder.modseq, **values)


def _values(
    folder_id: int,
    raw: bytes,
    fields: IndexFields,
    flags: int,
    keywords: str,
    internal_date: datetime,
    envelope: str | None,
) -> dict[str, Any]:
    """Every column but ``id``, ``uid`` and ``modseq``, by model field name."""
    return {
        "folder_id": folder_id,
        "flags": flags,
        "keywords": keywords,
        "internal_date": internal_date,
        "size": len(raw),
        "message_id": fields.message_id[:MAX_MESSAGE_ID],
        "subject": fields.subject,
        "from_addr": fields.from_addr,
        "from_name": fields.from_name,
        "to_addrs": list(fields.to_addrs),
        "cc_addrs": list(fields.cc_addrs),
        "date_header": fields.date,
        "in_reply_to": fields.in_reply_to,
        "references": list(fields.references),
        "thread_id": fields.thread_id,
        "has_attachments": fields.has_attachments,
        "preview": fields.preview,
        "is_signed": fields.is_signed,
        "is_encrypted": fields.is_encrypted,
        "body_text": fields.body_text,
        "raw_bytes": raw,
        "envelope": envelope,
    }


class RowInsert:
    """The INSERT of message rows on one connection, without model instances.

    Get it with :meth:`for_connection`, which builds it once per connection name.
    """

    def __init__(self, sql: str, columns: tuple[str, ...]) -> None:
        self.sql = sql
        self.uid_at = columns.index("uid")
        self.modseq_at = columns.index("modseq")
        self._columns = columns
        self._pick = operator.itemgetter(*columns)
        fields = Message._meta.fields_map
        # Tortoise's conversion is the identity for a plain field (base conversion,
        # no validators) given a value of its type, which IndexFields guarantees.
        self._convert = [
            (at, _converter(fields[name]))
            for at, name in enumerate(columns)
            if type(fields[name]).to_db_value is not Field.to_db_value or fields[name].validators
        ]
        self._defaults: list[tuple[str, Field[Any]]] | None = None

    @classmethod
    def for_connection(cls, db: BaseDBAsyncClient) -> RowInsert:
        key = (db.connection_name, db.capabilities.dialect)
        insert = _INSERTS.get(key)
        if insert is None:
            executor = db.executor_class(model=Message, db=db)
            insert = _INSERTS[key] = cls(executor.insert_query, tuple(executor.regular_columns))
        return insert

    def values(
        self,
        folder_id: int,
        raw: bytes,
        fields: IndexFields,
        flags: int,
        keywords: str,
        internal_date: datetime,
        envelope: str | None = None,
    ) -> list[Any]:
        """The bound values of one row; ``uid`` and ``modseq`` are 0 until :meth:`place`."""
        named = _values(folder_id, raw, fields, flags, keywords, internal_date, envelope)
        named["uid"] = named["modseq"] = 0
        if self._defaults is None:  # columns added to the model since _values() was written
            model = Message._meta.fields_map
            self._defaults = [(name, model[name]) for name in self._columns if name not in named]
        for name, column in self._defaults:
            named[name] = column.default() if callable(column.default) else column.default
        row = list(self._pick(named))
        for at, convert in self._convert:
            row[at] = convert(row[at])
        return row

    def place(self, row: list[Any], uid: int, modseq: int) -> None:
        """Set the UID and mod-sequence the folder lock handed out."""
        row[self.uid_at] = uid
        row[self.modseq_at] = modseq


def _converter(field: Field[Any]) -> Callable[[Any], Any]:
    """Tortoise's conversion for one column; for JSON, remembered per list of strings.

    Encoding a list costs about as much as the rest of the row, and the address
    and reference lists of mail repeat (most are empty). A ``str`` is JSON text
    already (the envelope), passed as it is.
    """
    if not isinstance(field, JSONField):
        return functools.partial(field.to_db_value, instance=Message)
    memo: dict[tuple[Any, ...], Any] = {}

    def convert(value: Any) -> Any:
        if type(value) is str:
            return value  # JSON text the store encoded itself (store/envelopes.py)
        if type(value) is not list or not all(type(item) is str for item in value):
            return field.to_db_value(value, Message)
        key = tuple(value)
        if key not in memo:
            if len(memo) >= _JSON_MEMO_SIZE:
                memo.clear()
            memo[key] = field.to_db_value(value, Message)
        return memo[key]

    return convert


_JSON_MEMO_SIZE = 1024
_INSERTS: dict[tuple[str, str], RowInsert] = {}
"""Statements by connection name and dialect: text derived from the model, as Tortoise caches."""


def received_event(
    address: str, folder: str, uid: int, fields: IndexFields, size: int, source: str
) -> Event:
    data = {
        "subject": fields.subject,
        "from": fields.from_addr,
        "from_name": fields.from_name,
        "to": list(fields.to_addrs),
        "message_id": fields.message_id,
        "size": size,
        "source": source,
    }
    return Event(EventType.EMAIL_RECEIVED, address, folder, uid, data)


class InboxChanged(Exception):
    """An INBOX taken from a cache is no longer that address's INBOX.

    Raised before anything is written, or after the transaction rolled back.
    """

    def __init__(self, addresses: list[str]) -> None:
        super().__init__(", ".join(addresses))
        self.addresses = tuple(addresses)


@dataclass(slots=True)
class InboxCopies:
    """The rows one INBOX gets in a batch.

    Attributes:
        folder_id: The INBOX.
        address: Whose INBOX it must still be when it is locked.
        cached: The id came from a cache: a failed check raises :class:`InboxChanged`
            (otherwise the mailbox was deleted meanwhile, and its copies are dropped).
        rows: From :meth:`RowInsert.values`.
        size: Their raw bytes in total.
    """

    folder_id: int
    address: str
    cached: bool
    rows: list[list[Any]] = field(default_factory=list)
    size: int = 0

    def reserve_params(self) -> list[Any]:
        count = len(self.rows)
        return uids.reserve_params(
            self.folder_id, count=count, unseen=count, size=self.size, inbox_of=self.address
        )

    def place(self, insert: RowInsert, taken: uids.Reservation) -> list[list[Any]]:
        """The rows with their UIDs and mod-sequence filled in."""
        for offset, row in enumerate(self.rows):
            insert.place(row, taken.first_uid + offset, taken.modseq)
        return self.rows


async def insert_into_inboxes(
    db: BaseDBAsyncClient, insert: RowInsert, inboxes: list[InboxCopies]
) -> dict[int, uids.Reservation]:
    """Lock each INBOX (in the given order), take its UIDs, insert its rows, commit.

    Args:
        db: The connection, not inside a transaction.
        insert: The statement, built for ``db``.
        inboxes: In lock order (ascending folder id, see ``store/uids.py``).

    Returns:
        The reservation of each INBOX that got its rows, by folder id.

    Raises:
        InboxChanged: A cached INBOX failed its check; nothing was written.
    """
    if isinstance(db, SqliteClient):
        return await _insert_sqlite(db, insert, inboxes)
    reserved: dict[int, uids.Reservation] = {}
    rows: list[list[Any]] = []
    async with uids.write_transaction() as connection:
        sql = uids.reserve_sql(connection.capabilities.dialect, inbox_check=True)
        for inbox in inboxes:
            found = await connection.execute_query_dict(sql, inbox.reserve_params())
            if not found:
                if inbox.cached:
                    raise InboxChanged([inbox.address])
                continue  # deleted meanwhile
            row = found[0]
            taken = uids.reservation(
                inbox.folder_id,
                len(inbox.rows),
                (row["uid_next"], row["uid_validity"], row["highest_modseq"]),
            )
            reserved[inbox.folder_id] = taken
            rows += inbox.place(insert, taken)
        if rows:
            await connection.execute_many(insert.sql, rows)
    return reserved


async def _insert_sqlite(
    db: SqliteClient, insert: RowInsert, inboxes: list[InboxCopies]
) -> dict[int, uids.Reservation]:
    """The same transaction, run in one call on the connection's thread.

    Every statement would otherwise be a round trip between the event loop
    and aiosqlite's thread (about 40 us of the loop's time each, measured
    here). Tortoise's connection lock is held throughout, as its own
    transactions do, so nothing else runs on the connection meanwhile.
    """
    sql = uids.reserve_sql(db.capabilities.dialect, inbox_check=True)

    def transaction(connection: sqlite3.Connection) -> dict[int, uids.Reservation]:
        reserved: dict[int, uids.Reservation] = {}
        rows: list[list[Any]] = []
        connection.execute("BEGIN IMMEDIATE")
        try:
            for inbox in inboxes:
                found = connection.execute(sql, inbox.reserve_params()).fetchone()
                if found is None:
                    if inbox.cached:
                        raise InboxChanged([inbox.address])
                    continue  # deleted meanwhile
                taken = uids.reservation(inbox.folder_id, len(inbox.rows), tuple(found))
                reserved[inbox.folder_id] = taken
                rows += inbox.place(insert, taken)
            if rows:
                connection.executemany(insert.sql, rows)
            connection.execute("COMMIT")
        except BaseException:
            if connection.in_transaction:
                connection.execute("ROLLBACK")
            raise
        return reserved

    async with db.acquire_connection() as connection:
        try:
            # aiosqlite's own way to run a function on its thread (its public
            # methods are built on it); _conn is the sqlite3 connection there.
            result: dict[int, uids.Reservation] = await connection._execute(
                lambda: transaction(connection._conn)
            )
        except sqlite3.IntegrityError as exc:  # as Tortoise translates them
            raise IntegrityError(exc) from exc
        except sqlite3.OperationalError as exc:
            raise OperationalError(exc) from exc
    return result
