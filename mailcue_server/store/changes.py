"""Read queries a protocol session needs to follow a folder: state, changes since a modseq, bytes.

An IMAP session keeps its own view of the selected folder (UIDs, flags) and
brings it up to date after every command and while it IDLEs (RFC 3501
section 7: untagged EXISTS, EXPUNGE and FETCH). These reads make that cheap:

- :func:`folder_state` is one row: when ``highest_modseq`` has not moved,
  nothing in the folder changed (every write bumps it, removals included;
  ``store/uids.py``).
- :func:`changed_since` returns only the messages written after a modseq.
- :func:`uids` lists what exists, for the rare case where messages vanished.

Nothing here writes; every change to mail goes through ``store/messages.py``
or ``store/ingest.py``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from mailcue_server.store.mail_models import Folder, Message

QUERY_CHUNK = 500
"""UIDs per ``IN (...)`` query when loading raw bytes."""

_META_COLUMNS = ("uid", "flags", "keywords", "internal_date", "size", "modseq")


@dataclass(frozen=True, slots=True)
class FolderState:
    """One folder's identity and counters, read in one query."""

    id: int
    name: str
    special_use: str | None
    uid_validity: int
    uid_next: int
    highest_modseq: int
    messages: int
    unseen: int


@dataclass(frozen=True, slots=True)
class MessageMeta:
    """What a session caches per message: no bytes, no index fields.

    Attributes:
        uid: The IMAP UID.
        flags: The ``SystemFlag`` bitmask.
        keywords: Space-separated keywords.
        internal_date: The IMAP internal date (aware, UTC).
        size: Size of the raw bytes (RFC822.SIZE).
        modseq: The mod-sequence of the message's last change.
    """

    uid: int
    flags: int
    keywords: str
    internal_date: datetime
    size: int
    modseq: int


async def folder_state(folder_id: int) -> FolderState | None:
    """The folder's current counters, or ``None`` when it was deleted."""
    folder = await Folder.get_or_none(id=folder_id)
    return None if folder is None else state_of(folder)


def state_of(folder: Folder) -> FolderState:
    return FolderState(
        id=int(folder.id),
        name=folder.name,
        special_use=folder.special_use,
        uid_validity=int(folder.uid_validity),
        uid_next=int(folder.uid_next),
        highest_modseq=int(folder.highest_modseq),
        messages=int(folder.message_count),
        unseen=int(folder.unseen_count),
    )


async def changed_since(folder_id: int, modseq: int | None) -> list[MessageMeta]:
    """Messages added or changed after ``modseq`` (all of them for ``None``), by UID.

    A plain SELECT rather than an ORM query: selecting a large folder reads
    every row, and the ORM's per-value conversion (an ISO date parser in pure
    Python for SQLite) cost more than the query itself.
    """
    db = Message._meta.db
    table = Message._meta.basetable
    condition = table.folder_id == folder_id
    if modseq is not None:
        condition &= table.modseq > modseq
    columns = [getattr(table, name) for name in _META_COLUMNS]
    query = db.query_class.from_(table).select(*columns).where(condition).orderby(table.uid)
    rows = await db.execute_query_dict(*query.get_parameterized_sql())
    return [_meta(row) for row in rows]


async def uids(folder_id: int) -> list[int]:
    """Every UID in the folder, ascending."""
    rows = await Message.filter(folder_id=folder_id).order_by("uid").values("uid")
    return [int(row["uid"]) for row in rows]


async def count_above(folder_id: int, uid: int) -> int:
    """How many messages have a UID above ``uid``."""
    return await Message.filter(folder_id=folder_id, uid__gt=uid).count()


async def raw_messages(folder_id: int, uids_: Sequence[int]) -> dict[int, bytes]:
    """The exact stored bytes of several messages; missing UIDs are left out."""
    found: dict[int, bytes] = {}
    wanted = sorted(set(uids_))
    for start in range(0, len(wanted), QUERY_CHUNK):
        chunk = wanted[start : start + QUERY_CHUNK]
        rows = await Message.filter(folder_id=folder_id, uid__in=chunk).values_list(
            "uid", "raw_bytes"
        )
        found.update((int(uid), bytes(raw)) for uid, raw in rows)
    return found


def _meta(row: dict[str, Any]) -> MessageMeta:
    when = row["internal_date"]
    if isinstance(when, str):  # SQLite keeps ISO text
        when = datetime.fromisoformat(when)
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return MessageMeta(
        uid=int(row["uid"]),
        flags=int(row["flags"]),
        keywords=str(row["keywords"]),
        internal_date=when,
        size=int(row["size"]),
        modseq=int(row["modseq"]),
    )
