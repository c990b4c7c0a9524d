"""The single write path for mail, and the reads that go with it.

Every way a message enters or changes ends here or in ``store/ingest.py``
(SMTP/LMTP delivery and its group commit): IMAP APPEND and API inject
(:func:`append`), flags, copy, move, delete/expunge and purge. Each function
commits one transaction and then publishes its events on the bus it is
handed (STYLE rules 1 and 2), so a subscriber that reacts to an event always
finds the change in the database, and a transaction that fails publishes
nothing.

Messages are addressed by mailbox address, folder name and IMAP UID. UIDs,
mod-sequences and the folder counters are handled by ``store/uids.py``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from tortoise.queryset import QuerySet

from mailcue_server.errors import Invalid, NotFound
from mailcue_server.events.bus import Event, EventBus, EventType, publish_quietly
from mailcue_server.mail.index import index_message
from mailcue_server.mail.search_query import parse_search
from mailcue_server.store import uids
from mailcue_server.store.mail_models import (
    INBOX,
    LISTED_FIELDS,
    Folder,
    Mailbox,
    Message,
    SystemFlag,
    decode_flags,
    encode_flags,
)
from mailcue_server.store.mailboxes import (
    folder_name,
    get_folder,
    get_mailbox,
    normalise_address,
)
from mailcue_server.store.message_rows import Stored, new_row, received_event
from mailcue_server.store.search import search_folder

log = logging.getLogger(__name__)

QUERY_CHUNK = 1000
"""UIDs per ``IN (...)`` query: far below SQLite's and asyncpg's parameter limits."""

SUMMARY_FIELDS = LISTED_FIELDS
"""Every column but the raw bytes and the search text: what listings load."""

# Every bitmask with \Deleted set: filters on one bit the same way on every engine.
_DELETED_VALUES = [value for value in range(max(SystemFlag) * 2) if value & SystemFlag.DELETED]


class FlagMode(StrEnum):
    """IMAP STORE's three ways to change flags (RFC 9051 section 6.4.6)."""

    REPLACE = "replace"
    ADD = "add"
    REMOVE = "remove"


class Sort(StrEnum):
    """Listing orders; the REST ``sort`` values plus the thread view."""

    DATE_DESC = "date_desc"
    DATE_ASC = "date_asc"
    THREAD = "thread"


@dataclass(frozen=True, slots=True)
class Page:
    """One page of a folder listing (messages loaded without their raw bytes)."""

    total: int
    messages: list[Message]


@dataclass(frozen=True, slots=True)
class FolderStatus:
    """What IMAP STATUS/SELECT report, from the folder's counters (no message scan)."""

    name: str
    exists: int
    unseen: int
    uid_next: int
    uid_validity: int
    highest_modseq: int
    size_bytes: int
    special_use: str | None = None


@dataclass(frozen=True, slots=True)
class MailboxCounts:
    """Totals over a mailbox's folders (``emails`` and ``unread`` include every folder)."""

    emails: int
    unread: int
    junk: int
    size_bytes: int
    folders: tuple[FolderStatus, ...] = field(default=())


@dataclass(frozen=True, slots=True)
class Appending:
    """One message to store straight into a folder (IMAP APPEND, API inject).

    Attributes:
        mailbox: The mailbox address.
        folder: The folder name.
        raw: The exact bytes to store.
        flags: IMAP flag names to set.
        internal_date: The internal date; now when ``None``.
    """

    mailbox: str
    folder: str
    raw: bytes
    flags: tuple[str, ...] = ()
    internal_date: datetime | None = None


async def append(
    mailbox: str,
    folder: str,
    raw: bytes,
    *,
    bus: EventBus,
    flags: Iterable[str] = (),
    internal_date: datetime | None = None,
    source: str = "append",
) -> Stored:
    """Store a message straight into a folder: IMAP APPEND (RFC 9051 section 6.3.12) and inject.

    Args:
        mailbox: The mailbox address.
        folder: The folder name.
        raw: The exact bytes to store.
        bus: Where ``email.received`` is published after commit.
        flags: IMAP flag names to set.
        internal_date: The internal date; now when ``None``.
        source: For the event (``append``, ``inject``...).

    Returns:
        The UID and UIDVALIDITY (APPENDUID, RFC 4315).

    Raises:
        NotFound: No such mailbox or folder.
    """
    item = Appending(mailbox, folder, raw, tuple(flags), internal_date)
    [stored] = await append_many([item], bus=bus, source=source)
    return stored


async def append_many(
    items: Sequence[Appending], *, bus: EventBus, source: str = "append"
) -> list[Stored]:
    """Store several messages in one transaction (bulk inject): all of them or none.

    Returns:
        Where each landed, in order.

    Raises:
        NotFound: A mailbox or folder does not exist (nothing is stored).
    """
    folders: dict[tuple[str, str], Folder] = {}
    for item in items:
        key = (normalise_address(item.mailbox), folder_name(item.folder))
        if key not in folders:
            folders[key] = await get_folder(item.mailbox, item.folder)
    prepared = []
    for item in items:
        target = folders[(normalise_address(item.mailbox), folder_name(item.folder))]
        bits, keywords = encode_flags(item.flags)
        prepared.append((item, target, index_message(item.raw), bits, keywords))
    plan: dict[int, list[int]] = {}  # folder id -> [count, unseen, size]
    for item, target, _, bits, _ in prepared:
        totals = plan.setdefault(target.id, [0, 0, 0])
        totals[0] += 1
        totals[1] += 0 if bits & SystemFlag.SEEN else 1
        totals[2] += len(item.raw)
    now = datetime.now(UTC)
    stored: list[Stored] = []
    events: list[Event] = []
    async with uids.write_transaction():
        reserved: dict[int, uids.Reservation] = {}
        for folder_id in sorted(plan):
            count, unseen, size = plan[folder_id]
            taken = await uids.reserve(folder_id, count=count, unseen=unseen, size=size)
            if taken is None:
                raise NotFound("A folder was deleted meanwhile")
            reserved[folder_id] = taken
        next_uid = {folder_id: taken.first_uid for folder_id, taken in reserved.items()}
        rows: list[Message] = []
        for item, target, fields, bits, keywords in prepared:
            taken = reserved[target.id]
            uid = next_uid[target.id]
            next_uid[target.id] += 1
            # UTC always: SQLite compares and sorts the stored text.
            when = (item.internal_date or now).astimezone(UTC)
            rows.append(new_row(taken, uid, item.raw, fields, bits, keywords, when))
            address = normalise_address(item.mailbox)
            stored.append(Stored(address, target.name, uid, taken.uid_validity))
            events.append(received_event(address, target.name, uid, fields, len(item.raw), source))
        await Message.bulk_create(rows)
    await publish_quietly(bus, events)
    return stored


# --- changes --------------------------------------------------------------------------------


async def set_flags(
    mailbox: str,
    folder: str,
    uids_: Sequence[int],
    flags: Iterable[str],
    *,
    bus: EventBus,
    mode: FlagMode = FlagMode.REPLACE,
) -> dict[int, list[str]]:
    """Change flags (IMAP STORE, REST flags); publishes ``email.flags_changed`` per change.

    Returns:
        The new flags of every message that exists, by UID (changed or not).

    Raises:
        NotFound: No such mailbox or folder.
    """
    target = await get_folder(mailbox, folder)
    address = normalise_address(mailbox)
    bits, keywords = encode_flags(flags)
    wanted_keywords = set(keywords.split())
    result: dict[int, list[str]] = {}
    events: list[Event] = []
    async with uids.write_transaction():
        locked = await _lock(target)
        rows = await _rows(
            Message.filter(folder_id=target.id), uids_, "id", "uid", "flags", "keywords"
        )
        changes: dict[tuple[int, str], list[int]] = {}
        for row in rows:
            uid, old_bits, old_keywords = int(row["uid"]), int(row["flags"]), str(row["keywords"])
            new_bits, new_keywords = _apply(mode, old_bits, old_keywords, bits, wanted_keywords)
            result[uid] = decode_flags(new_bits, new_keywords)
            if (new_bits, new_keywords) == (old_bits, old_keywords):
                continue
            changes.setdefault((new_bits, new_keywords), []).append(int(row["id"]))
            was_seen, is_seen = old_bits & SystemFlag.SEEN, new_bits & SystemFlag.SEEN
            locked.account(unseen=(0 if is_seen else 1) - (0 if was_seen else 1))
            data = {"flags": result[uid], "seen": bool(is_seen)}
            events.append(Event(EventType.EMAIL_FLAGS_CHANGED, address, target.name, uid, data))
        for (new_bits, new_keywords), ids in changes.items():
            for start in range(0, len(ids), QUERY_CHUNK):
                await Message.filter(id__in=ids[start : start + QUERY_CHUNK]).update(
                    flags=new_bits, keywords=new_keywords, modseq=locked.modseq()
                )
        await locked.save()
    await publish_quietly(bus, events)
    return result


def _apply(
    mode: FlagMode, bits: int, keywords: str, change_bits: int, change_keywords: set[str]
) -> tuple[int, str]:
    current = set(keywords.split())
    if mode is FlagMode.ADD:
        return bits | change_bits, " ".join(sorted(current | change_keywords))
    if mode is FlagMode.REMOVE:
        return bits & ~change_bits, " ".join(sorted(current - change_keywords))
    return change_bits, " ".join(sorted(change_keywords))


async def copy(
    mailbox: str, folder: str, uids_: Sequence[int], destination: str, *, bus: EventBus
) -> dict[int, int]:
    """Copy messages to another folder of the same mailbox (IMAP COPY).

    Returns:
        Source UID -> new UID, for COPYUID (RFC 4315); missing UIDs are left out.
    """
    return await _transfer(mailbox, folder, uids_, destination, bus=bus, move=False)


async def move(
    mailbox: str, folder: str, uids_: Sequence[int], destination: str, *, bus: EventBus
) -> dict[int, int]:
    """Move messages to another folder of the same mailbox, atomically (IMAP MOVE, RFC 6851).

    Returns:
        Source UID -> new UID; missing UIDs are left out.
    """
    return await _transfer(mailbox, folder, uids_, destination, bus=bus, move=True)


async def _transfer(
    mailbox: str, folder: str, uids_: Sequence[int], destination: str, *, bus: EventBus, move: bool
) -> dict[int, int]:
    source = await get_folder(mailbox, folder)
    target = await get_folder(mailbox, destination)
    if source.id == target.id:
        raise Invalid("Source and destination folder are the same")
    address = normalise_address(mailbox)
    mapping: dict[int, int] = {}
    events: list[Event] = []
    kind = EventType.EMAIL_MOVED if move else EventType.EMAIL_COPIED
    async with uids.write_transaction():
        locked = await uids.lock_folders([source.id, target.id])
        if len(locked) < 2:
            raise NotFound("The folder was deleted meanwhile")
        src, dst = locked[source.id], locked[target.id]
        originals = await _messages(source.id, uids_)
        new_uids = dst.allocate_uids(len(originals))
        copies = []
        for original, uid in zip(originals, new_uids, strict=True):
            copies.append(_copy_row(original, dst, uid))
            mapping[original.uid] = uid
            unseen = 0 if original.flags & SystemFlag.SEEN else 1
            dst.account(messages=1, unseen=unseen, size=original.size)
            if move:
                src.account(messages=-1, unseen=-unseen, size=-original.size)
            data = {
                "from_folder": source.name,
                "from_uid": original.uid,
                "subject": original.subject,
            }
            events.append(Event(kind, address, target.name, uid, data))
        await Message.bulk_create(copies)
        if move and originals:
            await _delete_ids([m.id for m in originals])
            src.modseq()
        await uids.save_all(locked.values())
    await publish_quietly(bus, events)
    return mapping


def _copy_row(original: Message, folder: uids.LockedFolder, uid: int) -> Message:
    values = {name: getattr(original, name) for name in SUMMARY_FIELDS if name != "id"}
    values.update(folder_id=folder.id, uid=uid, modseq=folder.modseq())
    return Message(**values, body_text=original.body_text, raw_bytes=original.raw_bytes)


async def delete(mailbox: str, folder: str, uids_: Sequence[int], *, bus: EventBus) -> list[int]:
    """Remove messages for good, whatever their flags (REST delete, POP3 DELE at QUIT).

    Returns:
        The UIDs removed.
    """
    target = await get_folder(mailbox, folder)
    return await _remove(mailbox, target, uids_, only_deleted=False, bus=bus)


async def expunge(
    mailbox: str, folder: str, *, bus: EventBus, uids_: Sequence[int] | None = None
) -> list[int]:
    """Remove the messages flagged ``\\Deleted`` (IMAP EXPUNGE, or UID EXPUNGE with ``uids_``).

    Returns:
        The UIDs removed.
    """
    target = await get_folder(mailbox, folder)
    return await _remove(mailbox, target, uids_, only_deleted=True, bus=bus)


async def _remove(
    mailbox: str,
    target: Folder,
    uids_: Sequence[int] | None,
    *,
    only_deleted: bool,
    bus: EventBus,
) -> list[int]:
    address = normalise_address(mailbox)
    async with uids.write_transaction():
        locked = await _lock(target)
        query = Message.filter(folder_id=target.id)
        if only_deleted:
            query = query.filter(flags__in=_DELETED_VALUES)
        columns = ("id", "uid", "flags", "size")
        if uids_ is None:
            rows = await query.values(*columns)
        else:
            rows = await _rows(query, uids_, *columns)
        await _delete_ids([row["id"] for row in rows])
        for row in rows:
            unseen = 0 if int(row["flags"]) & SystemFlag.SEEN else 1
            locked.account(messages=-1, unseen=-unseen, size=-int(row["size"]))
        if rows:
            locked.modseq()
        await locked.save()
    removed = sorted(int(row["uid"]) for row in rows)
    await publish_quietly(
        bus, [Event(EventType.EMAIL_DELETED, address, target.name, uid) for uid in removed]
    )
    return removed


async def purge_mailbox(address: str, *, bus: EventBus) -> int:
    """Delete every message of a mailbox; folders and their UID counters stay.

    Publishes one ``mailbox.purged`` event. Returns the number of messages removed.
    """
    mailbox = await get_mailbox(address)
    async with uids.write_transaction():
        locked = await uids.lock_mailbox_folders(mailbox.id)
        # Counted before: on SQLite the row count Tortoise reports for a DELETE includes
        # the rows the full-text index's triggers change (sqlite3_total_changes).
        removed = await Message.filter(folder_id__in=list(locked)).count()
        await Message.filter(folder_id__in=list(locked)).delete()
        for folder in locked.values():
            if folder.folder.message_count:
                folder.modseq()
            f = folder.folder
            folder.account(messages=-f.message_count, unseen=-f.unseen_count, size=-f.total_bytes)
        await uids.save_all(locked.values())
    await publish_quietly(
        bus, [Event(EventType.MAILBOX_PURGED, mailbox.address, data={"deleted": removed})]
    )
    return int(removed)


async def delete_mailbox(address: str, *, bus: EventBus) -> None:
    """Delete a mailbox with its folders and messages; publishes ``mailbox.deleted``.

    Raises:
        NotFound: No such mailbox.
    """
    mailbox = await get_mailbox(address)
    async with uids.write_transaction():
        await Mailbox.filter(id=mailbox.id).delete()
    await publish_quietly(
        bus,
        [Event(EventType.MAILBOX_DELETED, mailbox.address, data={"mailbox_id": str(mailbox.id)})],
    )


# --- reads ----------------------------------------------------------------------------------


async def get_by_uid(mailbox: str, folder: str, uid: int) -> Message:
    """The whole message, raw bytes included.

    Raises:
        NotFound: No such mailbox, folder or message.
    """
    target = await get_folder(mailbox, folder)
    message = await Message.get_or_none(folder_id=target.id, uid=uid)
    if message is None:
        raise NotFound(f"Message {uid} not found in {folder}")
    return message


async def raw_bytes(mailbox: str, folder: str, uid: int) -> bytes:
    """The message exactly as received (the ``.eml`` download, POP3 RETR, IMAP BODY[])."""
    target = await get_folder(mailbox, folder)
    values = await Message.filter(folder_id=target.id, uid=uid).values_list("raw_bytes", flat=True)
    if not values:
        raise NotFound(f"Message {uid} not found in {folder}")
    return bytes(values[0])


async def list_page(
    mailbox: str,
    folder: str = INBOX,
    *,
    offset: int = 0,
    limit: int = 50,
    sort: Sort = Sort.DATE_DESC,
    search: str | None = None,
) -> Page:
    """One page of a folder, without raw bytes.

    Args:
        mailbox: The mailbox address.
        folder: The folder name.
        offset: Messages to skip.
        limit: Most messages to return.
        sort: Newest first, oldest first, or grouped by thread.
        search: A search in the language of ``mail/search_query.py`` (words, phrases,
            ``from:``, ``is:unread``, ``before:``...), run on the full-text index.

    Raises:
        NotFound: No such mailbox or folder.
        Invalid: The search cannot be parsed.
    """
    target = await get_folder(mailbox, folder)
    order = {
        Sort.DATE_DESC: ("-internal_date", "-uid"),
        Sort.DATE_ASC: ("internal_date", "uid"),
        Sort.THREAD: ("thread_id", "internal_date", "uid"),
    }[Sort(sort)]
    query = parse_search(search or "")
    if not query.is_empty:
        found = await search_folder(target.id, query, offset=offset, limit=limit, order=order)
        return Page(total=found.total, messages=found.messages)
    listed = Message.filter(folder_id=target.id).order_by(*order).offset(offset).limit(limit)
    return Page(total=target.message_count, messages=list(await listed.only(*SUMMARY_FIELDS)))


async def folder_status(mailbox: str, folder: str = INBOX) -> FolderStatus:
    """EXISTS, UNSEEN, UIDNEXT, UIDVALIDITY (RFC 9051 section 6.3.11) from the counters."""
    return _status(await get_folder(mailbox, folder))


async def mailbox_counts(address: str) -> MailboxCounts:
    """Message, unread and junk counts of a mailbox, from the folder counters."""
    mailbox = await get_mailbox(address)
    return _counts(await Folder.filter(mailbox_id=mailbox.id).order_by("id"))


async def counts_by_mailbox(mailbox_ids: Sequence[Any]) -> dict[str, MailboxCounts]:
    """:func:`mailbox_counts` of many mailboxes in one query, by mailbox id (as text)."""
    folders = await Folder.filter(mailbox_id__in=list(mailbox_ids)).order_by("id")
    grouped: dict[str, list[Folder]] = {}
    for folder in folders:
        grouped.setdefault(str(folder.mailbox_id), []).append(folder)
    return {key: _counts(group) for key, group in grouped.items()}


def _counts(folders: Sequence[Folder]) -> MailboxCounts:
    statuses = tuple(_status(folder) for folder in folders)
    return MailboxCounts(
        emails=sum(s.exists for s in statuses),
        unread=sum(s.unseen for s in statuses),
        junk=sum(f.message_count for f in folders if f.special_use == "\\Junk"),
        size_bytes=sum(s.size_bytes for s in statuses),
        folders=statuses,
    )


def _status(folder: Folder) -> FolderStatus:
    return FolderStatus(
        name=folder.name,
        exists=folder.message_count,
        unseen=folder.unseen_count,
        uid_next=folder.uid_next,
        uid_validity=folder.uid_validity,
        highest_modseq=folder.highest_modseq,
        size_bytes=folder.total_bytes,
        special_use=folder.special_use,
    )


async def _lock(folder: Folder) -> uids.LockedFolder:
    locked = await uids.lock_folders([folder.id])
    if not locked:
        raise NotFound(f"Folder '{folder.name}' was deleted meanwhile")
    return locked[folder.id]


async def _delete_ids(ids: list[int]) -> None:
    for start in range(0, len(ids), QUERY_CHUNK):
        await Message.filter(id__in=ids[start : start + QUERY_CHUNK]).delete()


async def _rows(
    query: QuerySet[Message], uids_: Sequence[int], *columns: str
) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    wanted = sorted(set(uids_))
    for start in range(0, len(wanted), QUERY_CHUNK):
        chunk = wanted[start : start + QUERY_CHUNK]
        rows += await query.filter(uid__in=chunk).values(*columns)
    return sorted(rows, key=lambda row: int(row["uid"]))


async def _messages(folder_id: int, uids_: Sequence[int]) -> list[Message]:
    found: list[Message] = []
    wanted = sorted(set(uids_))
    for start in range(0, len(wanted), QUERY_CHUNK):
        chunk = wanted[start : start + QUERY_CHUNK]
        found += await Message.filter(folder_id=folder_id, uid__in=chunk).order_by("uid")
    return found
