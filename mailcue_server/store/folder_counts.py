"""What the folder counters say: a folder's IMAP STATUS, a mailbox's totals.

Every write keeps each folder's message, unseen and byte counters and its
UID and mod-sequence state up to date (``store/uids.py``), so these reads
are a few folder rows and never scan messages.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from mailcue_server.store.mail_models import INBOX, Folder
from mailcue_server.store.mailboxes import get_folder, get_mailbox


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


def status_of(folder: Folder) -> FolderStatus:
    """A folder row's counters as :class:`FolderStatus`."""
    return _status(folder)


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
