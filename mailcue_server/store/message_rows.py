"""Building message rows and their ``email.received`` events: shared by ingest and append."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from mailcue_server.events.bus import Event, EventType
from mailcue_server.mail.index import IndexFields
from mailcue_server.store import uids
from mailcue_server.store.mail_models import Message

MAX_MESSAGE_ID = 255


@dataclass(frozen=True, slots=True)
class Stored:
    """Where a message landed: enough for APPENDUID/COPYUID (RFC 4315) and the REST ``uid``."""

    mailbox: str
    folder: str
    uid: int
    uid_validity: int


def new_row(
    folder: uids.Reservation,
    uid: int,
    raw: bytes,
    fields: IndexFields,
    flags: int,
    keywords: str,
    internal_date: datetime,
) -> Message:
    return Message(
        folder_id=folder.folder_id,
        uid=uid,
        flags=flags,
        keywords=keywords,
        modseq=folder.modseq,
        internal_date=internal_date,
        size=len(raw),
        message_id=fields.message_id[:MAX_MESSAGE_ID],
        subject=fields.subject,
        from_addr=fields.from_addr,
        from_name=fields.from_name,
        to_addrs=list(fields.to_addrs),
        cc_addrs=list(fields.cc_addrs),
        date_header=fields.date,
        in_reply_to=fields.in_reply_to,
        references=list(fields.references),
        thread_id=fields.thread_id,
        has_attachments=fields.has_attachments,
        preview=fields.preview,
        is_signed=fields.is_signed,
        is_encrypted=fields.is_encrypted,
        body_text=fields.body_text,
        raw_bytes=raw,
    )


def received_event(
    address: str, folder: str, uid: int, fields: IndexFields, size: int, source: str
) -> Event:
    data = {
        "subject": fields.subject,
        "from": fields.from_addr,
        "from_name": fields.from_name,
        "to": list(fields.to_addrs),
        "message_id": fields.message_id,
        "size": size,
        "source": source,
    }
    return Event(EventType.EMAIL_RECEIVED, address, folder, uid, data)
