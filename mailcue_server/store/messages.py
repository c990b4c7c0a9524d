"""Changes to stored mail: flags, copy, move, delete, expunge and purge.

Mail enters the store through ``store/ingest.py`` (SMTP/LMTP delivery and
its group commit) or ``store/appends.py`` (IMAP APPEND and API inject);
every later change ends here. Each function commits one transaction and
then publishes its events on the bus it is handed (STYLE rules 1 and 2), so
a subscriber that reacts to an event always finds the change in the
database, and a transaction that fails publishes nothing.

Messages are addressed by mailbox address, folder name and IMAP UID. UIDs,
mod-sequences and the folder counters are handled by ``store/uids.py``.
Reading messages is ``store/message_queries.py``; reading the counters is
``store/folder_counts.py``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from enum import StrEnum
from typing import Any

from tortoise.queryset import QuerySet

from mailcue_server.errors import Invalid, NotFound
from mailcue_server.events.bus import Event, EventBus, EventType, publish_quietly
from mailcue_server.store import uids
from mailcue_server.store.mail_models import (
    LISTED_FIELDS,
    Folder,
    Mailbox,
    Message,
    SystemFlag,
    decode_flags,
    encode_flags,
)
from mailcue_server.store.mailboxes import get_folder, get_mailbox, normalise_address

log = logging.getLogger(__name__)

QUERY_CHUNK = 1000
"""UIDs per ``IN (...)`` query: far below SQLite's and asyncpg's parameter limits."""

# Every bitmask with \Deleted set: filters on one bit the same way on every engine.
_DELETED_VALUES = [value for value in range(max(SystemFlag) * 2) if value & SystemFlag.DELETED]


class FlagMode(StrEnum):
    """IMAP STORE's three ways to change flags (RFC 9051 section 6.4.6)."""

    REPLACE = "replace"
    ADD = "add"
    REMOVE = "remove"


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
    bits, keywords = encode_flags(flags)
    wanted_keywords = set(keywords.split())

    def change(old_bits: int, old_keywords: str) -> tuple[int, str]:
        return _apply(mode, old_bits, old_keywords, bits, wanted_keywords)

    return await _change_flags(mailbox, folder, uids_, change, bus=bus)


async def edit_flags(
    mailbox: str,
    folder: str,
    uids_: Sequence[int],
    *,
    add: Iterable[str] = (),
    remove: Iterable[str] = (),
    bus: EventBus,
) -> dict[int, list[str]]:
    """Add some flags and remove others in one change (REST ``PATCH .../flags``).

    Like :func:`set_flags` (one transaction, ``email.flags_changed`` per message
    that changed); a flag in both ``add`` and ``remove`` ends up removed.

    Raises:
        NotFound: No such mailbox or folder.
    """
    add_bits, add_keywords = encode_flags(add)
    remove_bits, remove_keywords = encode_flags(remove)
    adding, removing = set(add_keywords.split()), set(remove_keywords.split())

    def change(old_bits: int, old_keywords: str) -> tuple[int, str]:
        current = (set(old_keywords.split()) | adding) - removing
        return (old_bits | add_bits) & ~remove_bits, " ".join(sorted(current))

    return await _change_flags(mailbox, folder, uids_, change, bus=bus)


async def _change_flags(
    mailbox: str,
    folder: str,
    uids_: Sequence[int],
    change: Callable[[int, str], tuple[int, str]],
    *,
    bus: EventBus,
) -> dict[int, list[str]]:
    target = await get_folder(mailbox, folder)
    address = normalise_address(mailbox)
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
            new_bits, new_keywords = change(old_bits, old_keywords)
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
    values = {name: getattr(original, name) for name in LISTED_FIELDS if name != "id"}
    values.update(folder_id=folder.id, uid=uid, modseq=folder.modseq())
    return Message(
        **values,
        body_text=original.body_text,
        raw_bytes=original.raw_bytes,
        envelope=original.envelope,
    )


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
