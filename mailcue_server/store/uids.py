"""UID, UIDVALIDITY and MODSEQ allocation and folder counters, inside the writing transaction.

IMAP needs UIDs that strictly increase per folder and are never reused
(RFC 9051 section 2.3.1.1), and a client that saw ``UIDNEXT n`` must never
later find a new message below ``n``. So UIDs are not only unique, they
become visible in order. The folder row holds ``uid_next``, and every writer
takes that row's lock before it allocates:

- Adding messages (:func:`reserve`, the hot path) is one statement,
  ``UPDATE folders SET uid_next = uid_next + n, <counters> ... RETURNING``.
  On PostgreSQL the UPDATE takes the row lock and holds it until commit, so
  the next writer waits, then sees the ``uid_next`` this one wrote:
  allocation order is commit order. The statement's text is built once per
  engine (:func:`reserve_sql`); SMTP delivery can make it check that the
  folder is still the INBOX of an address, so it may trust a cached folder id.
- Other changes (flags, copy, move, delete) lock with :func:`lock_folders`
  (``SELECT ... FOR UPDATE``), read what they change, then write the
  counters back with :meth:`LockedFolder.save`.
- Several folders are always locked in id order, so writers never deadlock.
- SQLite: Tortoise drops ``FOR UPDATE`` there, but its SQLite client has one
  connection and a transaction holds that connection's lock from ``BEGIN`` to
  ``COMMIT``, so transactions run one at a time anyway (one process per
  database file; several nodes need PostgreSQL, STACK-NOTES).

``uid_next`` only grows: deleting messages never lowers it, and a rolled-back
transaction rolls its increment back with everything else. The same row
carries ``highest_modseq`` (RFC 7162 CONDSTORE: one new mod-sequence per
transaction and folder) and the message/unseen/byte counters.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from tortoise.backends.base.client import NestedTransactionContext, TransactionContext
from tortoise.transactions import in_transaction

from mailcue_server.store.mail_models import INBOX, Folder, Mailbox

MAX_UID = 2**32 - 1
"""UIDs and UIDVALIDITY are 32-bit unsigned numbers (RFC 9051 ``nz-number``)."""


def write_transaction() -> TransactionContext:
    """The transaction of one store write, which publishes its events after it commits.

    It must be a transaction of its own: inside a caller's transaction it
    would only be a savepoint, and the events would go out before the change
    is visible, or even when it is rolled back.

    Raises:
        RuntimeError: Called inside another transaction.
    """
    context = in_transaction()
    if isinstance(context, NestedTransactionContext):
        raise RuntimeError("store writes publish events; do not call them inside a transaction")
    return context


@dataclass(frozen=True, slots=True)
class Reservation:
    """What :func:`reserve` took: UIDs from ``first_uid`` on, and this change's mod-sequence."""

    folder_id: int
    first_uid: int
    uid_validity: int
    modseq: int


@functools.cache
def reserve_sql(dialect: str, *, inbox_check: bool) -> str:
    """The text of :func:`reserve`'s statement for an engine, built once.

    Parameters, in order: count, count, unseen, size, folder id and, with
    ``inbox_check``, the address whose INBOX the folder must still be.

    Args:
        dialect: Tortoise's dialect name (``sqlite`` or ``postgres``).
        inbox_check: Add the INBOX-of-this-address condition.
    """
    if dialect == "sqlite":
        marks = ["?"] * 7
    elif dialect == "postgres":
        marks = [f"${n}" for n in range(1, 8)]
    else:
        raise NotImplementedError(f"no UID allocation for the {dialect} engine")
    counters = ("uid_next", "message_count", "unseen_count", "total_bytes")
    changes = [f'"{name}"="{name}"+{mark}' for name, mark in zip(counters, marks, strict=False)]
    changes.append('"highest_modseq"="highest_modseq"+1')
    conditions = [f'"id"={marks[4]}']
    if inbox_check:
        # A mailbox deleted and created again has a new id (and SQLite may hand
        # the old folder id to another mailbox): check both, in the locking statement.
        owner = f'(SELECT "id" FROM "mailboxes" WHERE "address"={marks[6]})'  # noqa: S608
        conditions += [f'"name"={marks[5]}', f'"mailbox_id"={owner}']
    # S608: identifiers and placeholders only; every value is a bound parameter.
    return (
        f'UPDATE "folders" SET {",".join(changes)} WHERE {" AND ".join(conditions)} '  # noqa: S608
        'RETURNING "uid_next","uid_validity","highest_modseq"'
    )


def reserve_params(
    folder_id: int, *, count: int, unseen: int, size: int, inbox_of: str | None = None
) -> list[Any]:
    """The parameters of :func:`reserve_sql`, in its order."""
    params: list[Any] = [count, count, unseen, size, folder_id]
    if inbox_of is not None:
        params += [INBOX, inbox_of]
    return params


def reservation(folder_id: int, count: int, row: Sequence[Any]) -> Reservation:
    """Read the row :func:`reserve_sql` returns (``uid_next, uid_validity, highest_modseq``).

    Raises:
        OverflowError: The folder ran out of 32-bit UIDs.
    """
    uid_next = int(row[0])
    if uid_next - 1 > MAX_UID:
        # RFC 9051 section 2.3.1.1: the only way on is a new UIDVALIDITY.
        raise OverflowError(f"folder {folder_id} has run out of UIDs")
    return Reservation(folder_id, uid_next - count, int(row[1]), int(row[2]))


async def reserve(
    folder_id: int, *, count: int, unseen: int, size: int, inbox_of: str | None = None
) -> Reservation | None:
    """Allocate ``count`` UIDs for new messages and count them in, in one statement.

    Must run inside :func:`write_transaction`; the folder row stays locked
    until it commits. Call it for several folders in ascending id order.

    Args:
        folder_id: The folder.
        count: Messages being added.
        unseen: How many of them lack ``\\Seen``.
        size: Their total size in bytes.
        inbox_of: Only if the folder is still the INBOX of the mailbox with this
            (normalised) address.

    Returns:
        The reservation, or ``None`` when the folder no longer exists (or is
        not that INBOX).

    Raises:
        OverflowError: The folder ran out of 32-bit UIDs.
    """
    db = Folder._meta.db
    sql = reserve_sql(db.capabilities.dialect, inbox_check=inbox_of is not None)
    params = reserve_params(folder_id, count=count, unseen=unseen, size=size, inbox_of=inbox_of)
    # execute_query() drops the rows of an UPDATE on asyncpg; the dict variant keeps them.
    rows = await db.execute_query_dict(sql, params)
    if not rows:
        return None
    row = rows[0]
    return reservation(
        folder_id, count, (row["uid_next"], row["uid_validity"], row["highest_modseq"])
    )


class LockedFolder:
    """A folder row locked by the current transaction, with its pending changes."""

    def __init__(self, folder: Folder) -> None:
        self.folder = folder
        self._modseq: int | None = None

    @property
    def id(self) -> int:
        return int(self.folder.id)

    def allocate_uids(self, count: int) -> range:
        """Take the next ``count`` UIDs."""
        first = self.folder.uid_next
        if first + count - 1 > MAX_UID:
            # RFC 9051 section 2.3.1.1: the only way on is a new UIDVALIDITY.
            raise OverflowError(f"folder {self.folder.name!r} has run out of UIDs")
        self.folder.uid_next = first + count
        return range(first, first + count)

    def modseq(self) -> int:
        """This transaction's mod-sequence for the folder, allocated on the first call.

        Call it for every change, removals included (RFC 7162 section 3.2.10).
        """
        if self._modseq is None:
            self._modseq = self.folder.highest_modseq + 1
            self.folder.highest_modseq = self._modseq
        return self._modseq

    def account(self, *, messages: int = 0, unseen: int = 0, size: int = 0) -> None:
        """Record messages added (positive) or removed (negative)."""
        self.folder.message_count += messages
        self.folder.unseen_count += unseen
        self.folder.total_bytes += size

    async def save(self) -> None:
        await Folder.filter(id=self.folder.id).update(
            uid_next=self.folder.uid_next,
            highest_modseq=self.folder.highest_modseq,
            message_count=self.folder.message_count,
            unseen_count=self.folder.unseen_count,
            total_bytes=self.folder.total_bytes,
        )


async def lock_folders(folder_ids: Iterable[int]) -> dict[int, LockedFolder]:
    """Lock folder rows until the end of the current transaction.

    Must run inside :func:`write_transaction`. Folders deleted meanwhile are
    simply absent from the result.
    """
    ids = sorted(set(folder_ids))
    if not ids:
        return {}
    rows = await Folder.filter(id__in=ids).select_for_update().order_by("id")
    return {int(row.id): LockedFolder(row) for row in rows}


async def lock_mailbox_folders(mailbox_id: UUID) -> dict[int, LockedFolder]:
    """Lock every folder of a mailbox (see :func:`lock_folders`)."""
    rows = await Folder.filter(mailbox_id=mailbox_id).select_for_update().order_by("id")
    return {int(row.id): LockedFolder(row) for row in rows}


async def save_all(folders: Iterable[LockedFolder]) -> None:
    for folder in folders:
        await folder.save()


async def allocate_uid_validities(mailbox_id: UUID, count: int, now: float | None = None) -> int:
    """Reserve ``count`` consecutive UIDVALIDITY values for new folders of a mailbox.

    Based on the clock (RFC 9051 section 2.3.1.1 suggests the creation time)
    but always above every value the mailbox handed out before, so a folder
    deleted and created again in the same second still gets a new one, and
    each folder of the mailbox gets its own. Must run inside a transaction.

    Returns:
        The first value; the folders get ``first, first + 1, ...``.
    """
    mailbox = await Mailbox.filter(id=mailbox_id).select_for_update().get()
    first = max(int(time.time() if now is None else now), int(mailbox.last_uid_validity) + 1)
    mailbox.last_uid_validity = first + count - 1
    await Mailbox.filter(id=mailbox_id).update(last_uid_validity=mailbox.last_uid_validity)
    return first
