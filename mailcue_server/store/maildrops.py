"""POP3's view of a mailbox: its INBOX as a locked snapshot (RFC 1939 section 8).

The lock is per process: one POP3 session per maildrop on a node. Deletions
go through :func:`store.messages.delete`, so they publish like any other.
"""

from __future__ import annotations

from collections.abc import Sequence

from mailcue_server.events.bus import EventBus
from mailcue_server.store import message_queries, messages
from mailcue_server.store.mail_models import INBOX, Message
from mailcue_server.store.mailboxes import get_folder


async def inbox_sizes(address: str) -> list[tuple[int, int]]:
    """``(uid, size)`` of every INBOX message, oldest (lowest UID) first."""
    folder = await get_folder(address, INBOX)
    rows = await Message.filter(folder_id=folder.id).order_by("uid").values_list("uid", "size")
    return [(int(uid), int(size)) for uid, size in rows]


async def read(address: str, uid: int) -> bytes:
    """The exact stored bytes (raises NotFound if the message is gone)."""
    return await message_queries.raw_bytes(address, INBOX, uid)


async def remove(address: str, uids: Sequence[int], *, bus: EventBus) -> list[int]:
    return await messages.delete(address, INBOX, list(uids), bus=bus)


class Locks:
    """Which maildrops are in use by a session of this process."""

    def __init__(self) -> None:
        self._held: set[str] = set()

    def acquire(self, address: str) -> bool:
        if address in self._held:
            return False
        self._held.add(address)
        return True

    def release(self, address: str) -> None:
        self._held.discard(address)
