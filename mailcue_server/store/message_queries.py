"""Reading stored messages: one message, its exact bytes, a page of a folder.

Nothing here writes; every change to mail goes through ``store/messages.py``
or ``store/ingest.py``. Messages are addressed by mailbox address, folder
name and IMAP UID, as there. Folder and mailbox totals come from the folder
counters, in ``store/folder_counts.py``.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from mailcue_server.errors import NotFound
from mailcue_server.mail.search_query import parse_search
from mailcue_server.store.mail_models import INBOX, LISTED_FIELDS, Message
from mailcue_server.store.mailboxes import get_folder
from mailcue_server.store.search import search_folder

SUMMARY_FIELDS = LISTED_FIELDS
"""Every column but the raw bytes, the search text and the envelope: what listings load."""


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
