"""The index of a message: the fields lists and search need, from its raw bytes.

This runs once per stored message on the SMTP hot path, so it is cheap on
purpose (STACK-NOTES, "Parsing mail on the hot path"): the header block is
read by :mod:`mailcue_server.mail.header_block` and its values by
:mod:`mailcue_server.mail.header_values`, and the body gets the one light
pass of :mod:`mailcue_server.mail.body_scan`. The full ``policy.default``
parse waits until someone opens the message.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import datetime

from mailcue_server.mail import tree
from mailcue_server.mail.body_scan import scan_body
from mailcue_server.mail.header_block import fields_by_name, first_value, header_items, split_head
from mailcue_server.mail.header_values import (
    addresses,
    decoded_text,
    first_message_id,
    message_ids,
    parse_date,
)

PREVIEW_CHARS = 200
BODY_TEXT_CHARS = 64 * 1024

_SURROGATE = re.compile("[\ud800-\udfff]")


@dataclass(frozen=True, slots=True)
class IndexFields:
    """What the store keeps next to the raw bytes of a message.

    Attributes:
        message_id: The ``Message-ID`` as written (angle brackets included), or "".
        subject: The decoded (RFC 2047), unfolded subject.
        from_addr: The first ``From`` address.
        from_name: Its decoded display name.
        to_addrs: The ``To`` addresses.
        cc_addrs: The ``Cc`` addresses.
        date: The ``Date`` header in UTC, or ``None`` when missing or unreadable.
        in_reply_to: The first message id of ``In-Reply-To``.
        references: The message ids of ``References``, oldest first.
        thread_id: A short hash of the thread's root message id.
        has_attachments: Whether a part is an attachment.
        preview: The first :data:`PREVIEW_CHARS` characters of the text, whitespace collapsed.
        is_signed: PGP/MIME, S/MIME or inline PGP signature.
        is_encrypted: PGP/MIME, S/MIME or inline PGP encryption.
        body_text: The first :data:`BODY_TEXT_CHARS` characters of the same text, for
            full-text search.
        is_delivery_report: A bounce or delay notice (RFC 3464: ``multipart/report``
            with ``report-type=delivery-status``); not stored, read after receipt.
    """

    message_id: str
    subject: str
    from_addr: str
    from_name: str
    to_addrs: tuple[str, ...]
    cc_addrs: tuple[str, ...]
    date: datetime | None
    in_reply_to: str | None
    references: tuple[str, ...]
    thread_id: str
    has_attachments: bool
    preview: str
    is_signed: bool
    is_encrypted: bool
    body_text: str
    is_delivery_report: bool = False


def index_message(raw: bytes) -> IndexFields:
    """Index one message.

    Never raises on malformed mail: a field it cannot read is left empty.

    Args:
        raw: The message exactly as stored.

    Returns:
        The index fields.
    """
    head = split_head(raw)[0]
    fields = fields_by_name(header_items(head), utf8=not head.isascii())
    message_id = first_message_id(fields, "message-id") or decoded_text(
        first_value(fields, "message-id")
    )
    in_reply_to = first_message_id(fields, "in-reply-to")
    references = message_ids(fields, "references")
    sender = addresses(fields, "from")
    scan = scan_body(tree.parse(raw))
    text = scan.text()
    return IndexFields(
        message_id=_clean(message_id),
        subject=_clean(decoded_text(first_value(fields, "subject"))),
        from_addr=_clean(sender[0][1]) if sender else "",
        from_name=_clean(sender[0][0]) if sender else "",
        to_addrs=tuple(_clean(addr) for _, addr in addresses(fields, "to")),
        cc_addrs=tuple(_clean(addr) for _, addr in addresses(fields, "cc")),
        date=parse_date(first_value(fields, "date")),
        in_reply_to=_clean(in_reply_to) if in_reply_to else None,
        references=tuple(_clean(ref) for ref in references),
        thread_id=thread_id(message_id, in_reply_to, references, raw),
        has_attachments=scan.has_attachments,
        preview=_clean(text[:PREVIEW_CHARS]),
        is_signed=scan.is_signed,
        is_encrypted=scan.is_encrypted,
        body_text=_clean(text[:BODY_TEXT_CHARS]),
        is_delivery_report=_is_delivery_report(first_value(fields, "content-type")),
    )


def _is_delivery_report(content_type: str) -> bool:
    """``multipart/report; report-type=delivery-status`` (RFC 3462, RFC 3464)."""
    lowered = content_type.lower()
    return lowered.lstrip().startswith("multipart/report") and "delivery-status" in lowered


def thread_id(
    message_id: str, in_reply_to: str | None, references: tuple[str, ...], raw: bytes
) -> str:
    """Hash of the thread root: the first reference, else the parent, else the message itself."""
    root = references[0] if references else in_reply_to or message_id
    seed = root.encode("utf-8", "surrogateescape") if root else raw
    return hashlib.sha256(seed).hexdigest()[:24]


def _clean(value: str) -> str:
    """Text any database stores: PostgreSQL refuses NUL characters and lone surrogates."""
    if value.isascii():
        return value.replace("\x00", "") if "\x00" in value else value
    if "\x00" in value:
        value = value.replace("\x00", "")
    if _SURROGATE.search(value):
        value = value.encode("utf-8", "replace").decode("utf-8")
    return value
