"""Which folder is the INBOX of an address: the cache that spares SMTP delivery a lookup.

Pure bookkeeping in memory (no database); :mod:`mailcue_server.store.ingest`
checks every entry it uses inside the delivery's own transaction.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable

INBOX_CACHE_SIZE = 4096
"""Addresses whose INBOX folder id :class:`InboxCache` remembers (least recently used go)."""


class InboxCache:
    """Which folder is the INBOX of an address, so a delivery skips the lookup.

    An entry is never trusted blindly: the statement that locks the folder
    (:func:`~mailcue_server.store.uids.reserve_sql` with ``inbox_check``)
    also checks that it is still the INBOX of the mailbox that has this
    address. So a mailbox deleted, or deleted and created again, by this node
    or another, is noticed in the delivery's own transaction, which then
    starts over with fresh lookups (:func:`~mailcue_server.store.ingest.ingest_many`).

    Args:
        size: How many addresses to remember.
    """

    def __init__(self, size: int = INBOX_CACHE_SIZE) -> None:
        self._size = size
        self._folders: OrderedDict[str, int] = OrderedDict()

    def lookup(self, addresses: Iterable[str]) -> dict[str, int]:
        """The remembered folder ids of those addresses that have one."""
        found: dict[str, int] = {}
        for address in addresses:
            folder_id = self._folders.get(address)
            if folder_id is not None:
                self._folders.move_to_end(address)
                found[address] = folder_id
        return found

    def remember(self, folders: dict[str, int]) -> None:
        self._folders.update(folders)
        while len(self._folders) > self._size:
            self._folders.popitem(last=False)

    def forget(self, addresses: Iterable[str]) -> None:
        for address in addresses:
            self._folders.pop(address, None)
