"""The email list as a cursor connection, for one folder or "All mail", and its nested fields.

A cursor names the last row a client holds (its internal date and its uid,
or its row id across folders), so the next page starts right after it: mail
that arrives meanwhile sorts before the first page and never shifts a later
one (``store/mail_pages.py``). Cursors are opaque to clients: base64 of a
tagged position; one from another kind of list, or a made-up one, is a 400.

The nested fields of a page's rows (attachments, authentication results,
envelope) are computed here in batches: ``schema/loaders.py`` collects the
rows a response asks for and calls one function per field with all of them,
which reads their bytes in one statement.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from datetime import datetime

from mailcue_server.errors import Invalid
from mailcue_server.mail.mime import parse_detail
from mailcue_server.resolvers.access import reachable_mailboxes
from mailcue_server.resolvers.context import Context
from mailcue_server.resolvers.emails import (
    attachment_view,
    authentication_view,
    envelope_view,
    folder_of,
    summary_of,
    target_mailbox,
)
from mailcue_server.schema.types.email_list import EmailConnection, EmailEdge, EmailRow, PageInfo
from mailcue_server.schema.types.emails import AttachmentInfo, AuthenticationInfo, MessageEnvelope
from mailcue_server.store import mail_pages
from mailcue_server.store.envelopes import read_envelope
from mailcue_server.store.mail_models import Message
from mailcue_server.store.mail_pages import MailPage, Position, Stored
from mailcue_server.store.mailboxes import get_folder

MAX_FIRST = 500
_FOLDER_TAG = "f"
_ALL_TAG = "a"


def encode_cursor(tag: str, message: Message, key: int) -> str:
    text = f"{tag}|{message.internal_date.isoformat()}|{key}"
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None, tag: str) -> Position | None:
    """The position a cursor names; ``None`` for none.

    Raises:
        Invalid: Not a cursor of this kind of list.
    """
    if not cursor:
        return None
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        kind, moment, key = text.split("|")
        if kind != tag or not key.isdecimal():
            raise ValueError(kind)
        return Position(datetime.fromisoformat(moment), int(key))
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise Invalid("'after' is not a cursor of this list") from None


def _check_first(first: int) -> None:
    if not 1 <= first <= MAX_FIRST:
        raise Invalid(f"first must be between 1 and {MAX_FIRST}")


def row_of(message: Message, address: str, folder: str) -> EmailRow:
    summary = summary_of(message, address, folder)
    return EmailRow.of(summary, id=_row_id(address, folder, message.uid), row_id=message.id)


def _row_id(address: str, folder: str, uid: int) -> str:
    text = f"{address}\n{folder}\n{uid}"
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def _connection(page: MailPage, edges: list[EmailEdge], after: str | None) -> EmailConnection:
    return EmailConnection(
        edges=edges,
        page_info=PageInfo(
            has_next_page=page.has_more,
            has_previous_page=after is not None,
            start_cursor=edges[0].cursor if edges else None,
            end_cursor=edges[-1].cursor if edges else None,
        ),
        total_count=page.total,
    )


async def folder_connection(
    ctx: Context,
    *,
    mailbox: str | None,
    folder: str,
    first: int = 50,
    after: str | None = None,
    search: str | None = None,
) -> EmailConnection:
    """The rows of one folder after the cursor ``after``, newest first.

    Raises:
        Invalid: ``first`` out of 1..500, a bad cursor or a bad search.
        NotFound: No such mailbox (within reach) or folder.
    """
    _check_first(first)
    position = decode_cursor(after, _FOLDER_TAG)
    box = await target_mailbox(ctx, mailbox, "email:read")
    target = await get_folder(box.address, folder)
    page = await mail_pages.folder_page(target, after=position, limit=first, search=search)
    name = folder_of(target.name)
    edges = [
        EmailEdge(cursor=encode_cursor(_FOLDER_TAG, m, m.uid), node=row_of(m, box.address, name))
        for m in page.messages
    ]
    return _connection(page, edges, after)


async def all_mail_connection(
    ctx: Context, *, folder: str | None = None, first: int = 50, after: str | None = None
) -> EmailConnection:
    """Rows of every mailbox the caller may read, newest first.

    Args:
        folder: Only folders of this name in each mailbox; ``None``: every folder
            but Trash and Junk.

    Raises:
        Invalid: ``first`` out of 1..500, or a bad cursor.
    """
    _check_first(first)
    position = decode_cursor(after, _ALL_TAG)
    principal = ctx.require_principal()
    principal.require_scope("email:read")
    mailbox_ids = None
    if not (principal.is_admin and principal.allowed_mailboxes is None):
        mailbox_ids = [m.id for m in await reachable_mailboxes(principal)]
    name = folder_of(folder) if folder else None
    page = await mail_pages.all_mail_page(mailbox_ids, folder=name, after=position, limit=first)
    where = await mail_pages.where_folders([m.folder_id for m in page.messages])
    edges = []
    for message in page.messages:
        place = where.get(message.folder_id)
        if place is None:  # its folder was deleted between the two statements
            continue
        node = row_of(message, place.address, folder_of(place.folder))
        edges.append(EmailEdge(cursor=encode_cursor(_ALL_TAG, message, message.id), node=node))
    return _connection(page, edges, after)


# --- nested fields, a page at a time ------------------------------------------------------


async def stored_rows(row_ids: Sequence[int]) -> list[Stored | None]:
    """What the nested fields of many rows read, in one statement (None: gone since)."""
    found = await mail_pages.stored_of(row_ids)
    return [found.get(row_id) for row_id in row_ids]


def attachments_in(stored: Stored | None) -> list[AttachmentInfo]:
    """The attachment parts of a row (of the stored message, not a decrypted one)."""
    if stored is None:
        return []
    return [attachment_view(part) for part in parse_detail(stored.raw).attachments]


def authentication_in(ctx: Context, stored: Stored | None) -> AuthenticationInfo | None:
    """Our own Authentication-Results of a row (None where we added none)."""
    if stored is None:
        return None
    return authentication_view(stored.raw, ctx.settings.effective_hostname)


def envelope_in(ctx: Context, stored: Stored | None) -> MessageEnvelope | None:
    """A row's SMTP envelope as the caller may see it (see ``emails.envelope_view``)."""
    if stored is None:
        return None
    return envelope_view(
        ctx.require_principal(), read_envelope(stored.envelope), list(stored.named)
    )
