"""Keyset pages of mail, newest first: one folder, or every folder of many mailboxes.

A page starts after a :class:`Position` (the last message the client holds)
instead of at an offset, so mail that arrives meanwhile (newer, so before
the first page) never shifts a later page or repeats a message on it. The
order is ``internal_date`` then a unique key, both descending: the UID within
one folder (the ``(folder_id, internal_date, uid, ...)`` index gives that
order without sorting) and the row id across folders.

Also here: what a page's rows need beside themselves, each in one statement
whatever the page's size (the folders they sit in, their raw bytes and
envelopes for nested fields, the folders of many mailboxes).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from tortoise.expressions import Q
from tortoise.functions import Sum

from mailcue_server.mail.search_query import parse_search
from mailcue_server.store.mail_models import LISTED_FIELDS, Folder, Message, SpecialUse
from mailcue_server.store.search import search_folder

NOT_IN_ALL_MAIL = (SpecialUse.TRASH.value, SpecialUse.JUNK.value)
"""Folders "All mail" leaves out when no folder is named (as Gmail's All Mail does)."""


@dataclass(frozen=True, slots=True)
class Position:
    """A message's place in the newest-first order: a page starts right after it.

    Attributes:
        internal_date: The message's internal date.
        key: Its UID (in one folder) or its row id (across folders).
    """

    internal_date: datetime
    key: int


@dataclass(frozen=True, slots=True)
class MailPage:
    """Up to ``limit`` messages (without raw bytes) and whether more follow."""

    messages: list[Message]
    has_more: bool
    total: int


@dataclass(frozen=True, slots=True)
class Where:
    """A folder's mailbox address and name, for rows listed across folders."""

    address: str
    folder: str


async def folder_page(
    folder: Folder, *, after: Position | None, limit: int, search: str | None = None
) -> MailPage:
    """The ``limit`` messages of ``folder`` that follow ``after``, newest first.

    Raises:
        Invalid: The search cannot be parsed.
    """
    query = parse_search(search or "")
    if not query.is_empty:
        found = await search_folder(
            folder.id,
            query,
            offset=0,
            limit=limit + 1,
            order=("-internal_date", "-uid"),
            before=(after.internal_date, after.key) if after else None,
        )
        return _page(found.messages, limit, found.total)
    rows = Message.filter(folder_id=folder.id)
    if after is not None:
        rows = rows.filter(_after(after, "uid"))
    listed = rows.order_by("-internal_date", "-uid").limit(limit + 1)
    return _page(list(await listed.only(*LISTED_FIELDS)), limit, folder.message_count)


async def all_mail_page(
    mailbox_ids: Sequence[UUID] | None,
    *,
    folder: str | None,
    after: Position | None,
    limit: int,
) -> MailPage:
    """The messages after ``after`` across mailboxes, newest first.

    Args:
        mailbox_ids: The mailboxes to list, or ``None`` for every mailbox.
        folder: Only folders of this name (``INBOX``...); ``None``: every folder
            but Trash and Junk (:data:`NOT_IN_ALL_MAIL`).
        after: Where the page starts; ``None``: at the newest.
        limit: Most messages to return.
    """
    folders = _folders(mailbox_ids, folder)
    rows = Message.filter(**{f"folder__{k}": v for k, v in folders.filters.items()})
    for excluded in folders.excluded:
        rows = rows.filter(excluded)
    if after is not None:
        rows = rows.filter(_after(after, "id"))
    listed = rows.order_by("-internal_date", "-id").limit(limit + 1)
    counted: list[Any] = (
        await Folder.filter(**folders.filters)
        .filter(*folders.excluded_folders)
        .annotate(total=Sum("message_count"))
        .values_list("total", flat=True)
    )
    total = int(counted[0] or 0) if counted else 0
    return _page(list(await listed.only(*LISTED_FIELDS, "folder_id")), limit, total)


@dataclass(frozen=True, slots=True)
class _FolderFilter:
    filters: dict[str, Any]
    excluded: tuple[Q, ...]
    excluded_folders: tuple[Q, ...]


def _folders(mailbox_ids: Sequence[UUID] | None, name: str | None) -> _FolderFilter:
    filters: dict[str, Any] = {}
    if mailbox_ids is not None:
        filters["mailbox_id__in"] = list(mailbox_ids)
    if name is not None:
        filters["name"] = name
        return _FolderFilter(filters, (), ())
    # special_use IS NULL or not Trash/Junk (NOT IN alone would drop the NULLs: INBOX).
    keep = Q(special_use__isnull=True) | Q(special_use__not_in=NOT_IN_ALL_MAIL)
    keep_messages = Q(folder__special_use__isnull=True) | Q(
        folder__special_use__not_in=NOT_IN_ALL_MAIL
    )
    return _FolderFilter(filters, (keep_messages,), (keep,))


def _after(position: Position, key: str) -> Q:
    """Newest first: an older date, or the same date and a smaller key."""
    older = Q(internal_date__lt=position.internal_date)
    if key == "uid":
        return older | Q(internal_date=position.internal_date, uid__lt=position.key)
    return older | Q(internal_date=position.internal_date, id__lt=position.key)


def _page(rows: list[Message], limit: int, total: int) -> MailPage:
    return MailPage(messages=rows[:limit], has_more=len(rows) > limit, total=total)


async def where_folders(folder_ids: Sequence[int]) -> dict[int, Where]:
    """The mailbox address and name of each folder, in one statement."""
    if not folder_ids:
        return {}
    rows = await Folder.filter(id__in=list(set(folder_ids))).values(
        "id", "name", "mailbox__address"
    )
    return {int(r["id"]): Where(str(r["mailbox__address"]), str(r["name"])) for r in rows}


@dataclass(frozen=True, slots=True)
class Stored:
    """What a message's nested fields read beyond its index columns."""

    raw: bytes
    envelope: dict[str, object] | None
    named: tuple[str, ...]
    """The To and Cc addresses (what the envelope's Bcc is told apart from)."""


async def stored_of(message_ids: Sequence[int]) -> dict[int, Stored]:
    """Raw bytes and envelope of many messages, in one statement."""
    if not message_ids:
        return {}
    rows = await Message.filter(id__in=list(set(message_ids))).values(
        "id", "raw_bytes", "envelope", "to_addrs", "cc_addrs"
    )
    return {
        int(r["id"]): Stored(
            bytes(r["raw_bytes"]), r["envelope"], (*r["to_addrs"], *r["cc_addrs"])
        )
        for r in rows
    }


async def folders_of_mailboxes(mailbox_ids: Sequence[UUID]) -> dict[str, list[Folder]]:
    """The folders of many mailboxes (by mailbox id as text), INBOX first, in one statement."""
    grouped: dict[str, list[Folder]] = {str(m): [] for m in mailbox_ids}
    if not mailbox_ids:
        return grouped
    for folder in await Folder.filter(mailbox_id__in=list(set(mailbox_ids))).order_by("id"):
        grouped.setdefault(str(folder.mailbox_id), []).append(folder)
    for folders in grouped.values():
        folders.sort(key=lambda f: f.name != "INBOX")
    return grouped


async def row_at(address: str, folder: str, uid: int) -> Message | None:
    """One message's listed columns by mailbox, folder and UID (None: not there now)."""
    return (
        await Message.filter(
            folder__mailbox__address=address.lower(), folder__name=folder, uid=uid
        )
        .only(*LISTED_FIELDS)
        .first()
    )
