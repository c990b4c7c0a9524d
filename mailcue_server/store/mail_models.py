"""Tortoise models of the mail store: mailboxes, their folders and the messages in them.

Only ``store/`` imports this module. A message's IMAP UID is unique per folder
and comes from ``Folder.uid_next`` (see ``store/uids.py``); the folder row also
carries the counters that make status and listing totals cheap. Flags are a
bitmask of the RFC 9051 system flags plus a space-separated keyword list;
:func:`encode_flags` and :func:`decode_flags` convert to and from IMAP names.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from enum import IntFlag, StrEnum
from uuid import UUID

from tortoise import fields

from mailcue_server.store.model_base import StoreModel
from mailcue_server.store.models import User

INBOX = "INBOX"


class SpecialUse(StrEnum):
    """RFC 6154 special-use attributes of the default folders."""

    SENT = "\\Sent"
    DRAFTS = "\\Drafts"
    TRASH = "\\Trash"
    JUNK = "\\Junk"


DEFAULT_FOLDERS: tuple[tuple[str, str | None], ...] = (
    (INBOX, None),
    ("Sent", SpecialUse.SENT),
    ("Drafts", SpecialUse.DRAFTS),
    ("Trash", SpecialUse.TRASH),
    ("Junk", SpecialUse.JUNK),
)


class Mailbox(StoreModel):
    """An address that receives mail, with its IMAP/POP3/SMTP password."""

    id = fields.UUIDField(primary_key=True)
    address = fields.CharField(max_length=320, unique=True)
    display_name = fields.CharField(max_length=255, default="")
    password_hash = fields.CharField(max_length=255, null=True)
    owner: fields.ForeignKeyNullableRelation[User] = fields.ForeignKeyField(
        "mailcue.User", related_name="mailboxes", null=True, on_delete=fields.SET_NULL
    )
    quota_bytes: int | None = fields.BigIntField(null=True)
    signature = fields.TextField(default="", db_default="")
    # "standard" or "deliverability" (the REST contract's MailboxResponse.purpose).
    purpose = fields.CharField(max_length=16, default="standard", db_default="standard")
    # The last UIDVALIDITY handed to one of this mailbox's folders: a folder
    # deleted and created again must get a new one (RFC 9051 section 2.3.1.1).
    last_uid_validity = fields.BigIntField(default=0)
    created_at = fields.DatetimeField(auto_now_add=True)
    # This mailbox's own retention limits (``store/retention.py``): None follows the
    # server-wide setting, 0 keeps mail without that limit here.
    retention_max_messages: int | None = fields.IntField(null=True)
    retention_max_age_days: int | None = fields.IntField(null=True)

    class Meta:
        table = "mailboxes"


class Folder(StoreModel):
    """An IMAP mailbox (RFC 9051 calls folders mailboxes) inside one of our mailboxes."""

    id = fields.IntField(primary_key=True)
    mailbox: fields.ForeignKeyRelation[Mailbox] = fields.ForeignKeyField(
        "mailcue.Mailbox", related_name="folders", on_delete=fields.CASCADE
    )
    name = fields.CharField(max_length=255)
    special_use = fields.CharField(max_length=16, null=True)
    subscribed = fields.BooleanField(default=True)
    # IMAP UIDs and UIDVALIDITY are 32-bit unsigned: wider than a SQL INTEGER.
    uid_validity = fields.BigIntField()
    uid_next = fields.BigIntField(default=1)
    highest_modseq = fields.BigIntField(default=1)
    # Kept in the same transaction as every insert, flag change and delete.
    message_count = fields.IntField(default=0)
    unseen_count = fields.IntField(default=0)
    total_bytes = fields.BigIntField(default=0)
    created_at = fields.DatetimeField(auto_now_add=True)

    mailbox_id: UUID

    class Meta:
        table = "folders"
        unique_together = (("mailbox", "name"),)


class Message(StoreModel):
    """One stored message: its exact bytes plus the index fields lists and search need."""

    id = fields.BigIntField(primary_key=True)
    folder: fields.ForeignKeyRelation[Folder] = fields.ForeignKeyField(
        "mailcue.Folder", related_name="messages", on_delete=fields.CASCADE
    )
    uid = fields.BigIntField()
    flags = fields.SmallIntField(default=0)
    keywords = fields.TextField(default="")
    modseq = fields.BigIntField(default=1)
    internal_date = fields.DatetimeField()
    size = fields.IntField()
    message_id = fields.CharField(max_length=255, default="")
    subject = fields.TextField(default="")
    from_addr = fields.TextField(default="")
    from_name = fields.TextField(default="")
    to_addrs: list[str] = fields.JSONField(default=list)
    cc_addrs: list[str] = fields.JSONField(default=list)
    date_header: datetime | None = fields.DatetimeField(null=True)
    in_reply_to: str | None = fields.TextField(null=True)
    references: list[str] = fields.JSONField(default=list)
    thread_id = fields.CharField(max_length=64, default="")
    has_attachments = fields.BooleanField(default=False)
    preview = fields.TextField(default="")
    is_signed = fields.BooleanField(default=False)
    is_encrypted = fields.BooleanField(default=False)
    # The text full-text search indexes (``IndexFields.body_text``), kept in
    # step with the engine's index by ``migrations/0003_search_index.py``. On
    # disk it follows ``raw`` (a column added later goes last); listings don't
    # load it (``LISTED_FIELDS``).
    body_text = fields.TextField(default="", db_default="")
    # The exact bytes received. Last column on purpose: SQLite keeps a large
    # value in a chain of overflow pages, and reading any column stored after
    # it walks that chain. (``raw`` is taken by ``Model.raw()``.)
    raw_bytes = fields.BinaryField(source_field="raw")
    # The SMTP envelope of mail delivered over SMTP/LMTP (``store/envelopes.py``);
    # NULL for IMAP APPEND and inject. Read with the raw bytes (the detail),
    # never by listings (``LISTED_FIELDS``).
    envelope: dict[str, object] | None = fields.JSONField(null=True)

    folder_id: int

    class Meta:
        table = "messages"
        unique_together = (("folder", "uid"),)
        # A listing's order, and the flags and attachment tests of a search, come from
        # the first index alone: no sort, and no read of the (large) rows.
        indexes = (
            ("folder_id", "internal_date", "uid", "flags", "has_attachments"),
            ("message_id",),
        )


LISTED_FIELDS = tuple(
    name
    for name in Message._meta.fields_map
    if name not in ("raw_bytes", "body_text", "envelope", "folder")
)
"""The columns listings load: all but the raw bytes, the search text and the envelope."""


class SystemFlag(IntFlag):
    """The RFC 9051 section 2.3.2 system flags, one bit each in ``Message.flags``."""

    SEEN = 1
    ANSWERED = 2
    FLAGGED = 4
    DELETED = 8
    DRAFT = 16


_FLAG_NAMES: dict[str, SystemFlag] = {
    "\\seen": SystemFlag.SEEN,
    "\\answered": SystemFlag.ANSWERED,
    "\\flagged": SystemFlag.FLAGGED,
    "\\deleted": SystemFlag.DELETED,
    "\\draft": SystemFlag.DRAFT,
}
_NAME_OF: dict[SystemFlag, str] = {
    SystemFlag.SEEN: "\\Seen",
    SystemFlag.ANSWERED: "\\Answered",
    SystemFlag.FLAGGED: "\\Flagged",
    SystemFlag.DELETED: "\\Deleted",
    SystemFlag.DRAFT: "\\Draft",
}


def encode_flags(names: Iterable[str]) -> tuple[int, str]:
    """IMAP flag names to ``(bitmask, keywords)``.

    System flags match case-insensitively (RFC 9051 section 2.3.2); keywords
    keep their spelling, are de-duplicated and sorted. ``\\Recent`` is not
    storable and is dropped.
    """
    bits = 0
    keywords: set[str] = set()
    for name in names:
        flag = _FLAG_NAMES.get(name.lower())
        if flag is not None:
            bits |= flag
        elif name and not name.startswith("\\"):
            keywords.add(name)
    return bits, " ".join(sorted(keywords))


def decode_flags(bits: int, keywords: str) -> list[str]:
    """``(bitmask, keywords)`` back to IMAP flag names, system flags first."""
    names = [name for flag, name in _NAME_OF.items() if bits & flag]
    names.extend(keywords.split())
    return names
