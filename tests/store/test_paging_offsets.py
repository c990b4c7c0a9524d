"""The largest offset a page number maps to reads as an empty page on both engines."""

from __future__ import annotations

from mailcue_server.events.memory import MemoryBus
from mailcue_server.store import appends, mailboxes, message_queries, outbound_admin
from mailcue_server.store.db import Database
from mailcue_server.store.message_queries import Sort
from mailcue_server.store.paging import MAX_OFFSET, offset_of

pytest_plugins = ["mail_db"]  # the parametrised ``db`` fixture (tests/store/mail_db.py)

ALICE = "alice@example.test"


def test_page_numbers_beyond_64_bits_map_to_the_largest_offset() -> None:
    assert offset_of(1, 50) == 0
    assert offset_of(3, 50) == 100
    assert offset_of(10**30, 500) == MAX_OFFSET
    assert MAX_OFFSET < 2**63  # a signed 64-bit OFFSET on SQLite and PostgreSQL


async def test_the_largest_offset_is_an_empty_page(db: Database) -> None:
    bus = MemoryBus()
    await mailboxes.create_mailbox(ALICE, bus=bus)
    raw = b"From: bob@example.test\r\nTo: alice@example.test\r\nSubject: hello\r\n\r\nhi\r\n"
    await appends.append(ALICE, "INBOX", raw, bus=bus)

    for sort in Sort:
        for search in (None, "hello"):
            page = await message_queries.list_page(
                ALICE, offset=MAX_OFFSET, limit=500, sort=sort, search=search
            )
            assert (page.total, page.messages) == (1, []), (sort, search)
    assert await outbound_admin.list_entries(offset=MAX_OFFSET, limit=200) == (0, [])
