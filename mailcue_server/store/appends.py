"""Storing messages straight into a folder: IMAP APPEND and API inject.

SMTP/LMTP delivery has its own path with group commit (``store/ingest.py``);
this is the other way mail enters the store. Like every write, it commits one
transaction and then publishes ``email.received`` on the bus it is handed
(STYLE rules 1 and 2). Changes to stored mail (flags, copy, move, delete,
purge) are ``store/messages.py``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from mailcue_server.errors import NotFound
from mailcue_server.events.bus import Event, EventBus, publish_quietly
from mailcue_server.mail.header_limits import check_received
from mailcue_server.mail.index import index_message
from mailcue_server.store import uids
from mailcue_server.store.mail_models import Folder, Message, SystemFlag, encode_flags
from mailcue_server.store.mailboxes import folder_name, get_folder, normalise_address
from mailcue_server.store.message_rows import Stored, new_row, received_event


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
        LimitExceeded: A NUL in ``raw``, or a header over the limits of
            ``mail/header_limits.py``.
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
        LimitExceeded: A message breaks a rule of ``mail/header_limits.py`` (nothing is stored).
    """
    folders: dict[tuple[str, str], Folder] = {}
    for item in items:
        check_received(item.raw)
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
