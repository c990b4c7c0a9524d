"""Search over a folder on both engines: each filter, paging, order, index upkeep, index use."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path
from uuid import uuid4

import pytest
import pytest_asyncio
from tortoise.connection import get_connection
from tortoise.migrations.executor import MigrationExecutor, MigrationTarget
from tortoise.transactions import in_transaction

from mailcue_server.errors import Invalid
from mailcue_server.events.memory import MemoryBus
from mailcue_server.mail.search_query import parse_search
from mailcue_server.store import appends, ingest, mailboxes, message_queries, messages, search
from mailcue_server.store.db import Database, connection_name
from mailcue_server.store.ingest import Incoming
from mailcue_server.store.mail_models import Message
from mailcue_server.store.mailboxes import get_folder
from mailcue_server.store.message_queries import Sort
from services import fresh_postgres_database

pytest_plugins = ["mail_db"]  # the parametrised ``db`` fixture (tests/store/mail_db.py)

ALICE = "alice@example.test"
DAY = datetime(2026, 1, 10, 9, 0, tzinfo=UTC)
ORDER = ("-internal_date", "-uid")


def mail(
    subject: str,
    body: str,
    *,
    sender: str = "Bob Stone <bob@example.test>",
    to: str = ALICE,
    cc: str = "",
    attachment: bool = False,
    html: bool = False,
) -> bytes:
    head = f"From: {sender}\r\nTo: {to}\r\nSubject: {subject}\r\n"
    if cc:
        head += f"Cc: {cc}\r\n"
    if attachment:
        return (
            f'{head}Content-Type: multipart/mixed; boundary="b"\r\n\r\n'
            f"--b\r\nContent-Type: text/plain\r\n\r\n{body}\r\n"
            "--b\r\nContent-Type: application/pdf\r\n"
            'Content-Disposition: attachment; filename="a.pdf"\r\n\r\n%PDF-1.4\r\n--b--\r\n'
        ).encode()
    kind = "text/html" if html else "text/plain"
    return f"{head}Content-Type: {kind}; charset=utf-8\r\n\r\n{body}\r\n".encode()


# (subject, body, options, days after DAY, flags): UIDs 1-5 of Alice's INBOX, in this order.
INBOX_MAIL = [
    ("Quarterly report", "Please find the numbers attached.", {"attachment": True}, 0, ["\\Seen"]),
    ("Lunch plans", "The report can wait; lunch at noon?", {
        "sender": "carol@example.test", "cc": "Dave <dave@example.test>"}, 36, []),
    ("Re: Lunch plans", "Out of office until Monday.", {}, 69, ["\\Seen", "\\Flagged"]),
    ("Report quarterly", "numbers for the quarter", {
        "sender": "Erin Report <erin@example.test>", "to": "frank@example.test",
        "attachment": True}, 81, []),
    ("Newsletter", "<p>Weekly <b>digest</b> of news, caf\u00e9 edition</p>", {
        "sender": "Digest <news@example.test>", "html": True}, 115, []),
]  # fmt: skip


async def fill() -> None:
    bus = MemoryBus()
    for address in (ALICE, "zed@example.test"):
        await mailboxes.create_mailbox(address, bus=bus)
    for subject, body, options, days, flags in INBOX_MAIL:
        raw = mail(subject, body, **options)
        when = DAY + timedelta(days=days)
        await appends.append(ALICE, "INBOX", raw, bus=bus, flags=flags, internal_date=when)
    # The same words elsewhere: in Alice's Sent folder and in another mailbox's INBOX.
    for address, folder in ((ALICE, "Sent"), ("zed@example.test", "INBOX")):
        raw = mail("Quarterly report", "numbers report lunch digest")
        await appends.append(address, folder, raw, bus=bus, internal_date=DAY)


async def uids(text: str, folder: str = "INBOX", mailbox: str = ALICE) -> list[int]:
    """The UIDs a search finds, oldest first; checks the total against them."""
    page = await message_queries.list_page(
        mailbox, folder, search=text, sort=Sort.DATE_ASC, limit=100
    )
    found = [m.uid for m in page.messages]
    assert page.total == len(found), text
    return found


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("report", [1, 2, 4]),
        ("REPORT", [1, 2, 4]),
        ("quarterly report", [1, 4]),
        ('"quarterly report"', [1]),
        ('"report quarterly"', [4]),
        ("quart*", [1, 4]),
        ("digest", [5]),
        ("weekly digest news", [5]),
        ("café", [5]),
        ("re:lunch", [3]),
        ("nothing-like-this", []),
    ],
)
async def test_free_text_words_phrases_and_prefixes(
    db: Database, text: str, expected: list[int]
) -> None:
    await fill()
    assert await uids(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("from:bob", [1, 3]),
        ("from:bob@example.test", [1, 3]),
        ("from:stone", [1, 3]),
        ("from:report", [4]),
        ("from:example.test", [1, 2, 3, 4, 5]),
        ("to:dave", [2]),
        ("to:dave@example.test", [2]),
        ("to:frank", [4]),
        ("to:alice", [1, 2, 3, 5]),
        ("subject:report", [1, 4]),
        ('subject:"lunch plans"', [2, 3]),
        ("body:numbers", [1, 4]),
        ("body:report", [2]),
        ("has:attachment", [1, 4]),
        ("-has:attachment", [2, 3, 5]),
        ("is:read", [1, 3]),
        ("is:unread", [2, 4, 5]),
        ("-is:read", [2, 4, 5]),
        ("is:flagged", [3]),
        ("before:2026-02-15", [1]),
        ("after:2026-02-15", [2, 3, 4, 5]),
        ("after:2026-02-01 before:2026-04-01", [2, 3]),
        ("-before:2026-04-01", [4, 5]),
        ("before:2026-02-15T09:00:01Z", [1, 2]),
    ],
)
async def test_field_filters(db: Database, text: str, expected: list[int]) -> None:
    await fill()
    assert await uids(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("-report", [3, 5]),
        ("report -lunch", [1, 4]),
        ('report -"quarterly report"', [2, 4]),
        ("-from:bob", [2, 4, 5]),
        ("-from:bob -to:frank", [2, 5]),
        ("from:bob has:attachment is:read report", [1]),
        ("from:bob -has:attachment after:2026-01-11", [3]),
        ("numbers is:unread has:attachment before:2026-05-01", [4]),
        ("lunch -is:flagged", [2]),
        ("has:attachment -has:attachment", []),
        ("is:read is:unread", []),
        ("after:2026-03-01 before:2026-02-01", []),
    ],
)
async def test_negation_and_combinations(db: Database, text: str, expected: list[int]) -> None:
    await fill()
    assert await uids(text) == expected


async def test_results_stay_in_the_folder_and_mailbox(db: Database) -> None:
    await fill()
    assert await uids('"quarterly report" numbers') == [1]
    assert await uids('"quarterly report" numbers', "Sent") == [1]
    assert await uids('"quarterly report" numbers', "INBOX", "zed@example.test") == [1]
    assert await uids("digest", "Sent") == [1]
    assert await uids("digest", "Trash") == []


async def test_an_empty_search_lists_everything(db: Database) -> None:
    await fill()
    for text in ("", "   "):
        page = await message_queries.list_page(ALICE, search=text)
        assert (page.total, len(page.messages)) == (5, 5)


async def test_a_punctuation_only_search_is_invalid_never_everything(db: Database) -> None:
    await fill()
    for text in ("!!! -", '"', "\\"):
        with pytest.raises(Invalid, match="has nothing to look for"):
            await message_queries.list_page(ALICE, search=text)


async def test_bad_search_is_invalid(db: Database) -> None:
    await fill()
    with pytest.raises(Invalid, match="notadate"):
        await message_queries.list_page(ALICE, search="before:notadate")


async def test_listed_rows_leave_out_raw_bytes_and_search_text(db: Database) -> None:
    await fill()
    [found] = (await message_queries.list_page(ALICE, search="digest")).messages
    assert found.subject == "Newsletter"
    for heavy in ("raw_bytes", "body_text"):
        with pytest.raises(AttributeError):
            getattr(found, heavy)


async def test_pages_are_disjoint_and_cover_the_result(db: Database) -> None:
    bus = MemoryBus()
    await mailboxes.create_mailbox(ALICE, bus=bus)
    for n in range(40):
        body = "invoice attached" if n % 4 else "a receipt"
        # Pairs of messages share an instant: the UID breaks the tie.
        when = DAY + timedelta(hours=n // 2)
        await appends.append(ALICE, "INBOX", mail(f"n{n}", body), bus=bus, internal_date=when)
    wanted = [n + 1 for n in range(40) if n % 4]
    for sort, expected in ((Sort.DATE_DESC, wanted[::-1]), (Sort.DATE_ASC, wanted)):
        seen: list[int] = []
        for offset in range(0, 35, 7):
            page = await message_queries.list_page(
                ALICE, search="invoice", sort=sort, offset=offset, limit=7
            )
            assert page.total == 30
            seen += [m.uid for m in page.messages]
        assert seen == expected
    beyond = await message_queries.list_page(ALICE, search="invoice", offset=30, limit=7)
    assert (beyond.total, beyond.messages) == (30, [])
    threaded = await message_queries.list_page(
        ALICE, search="invoice", sort=Sort.THREAD, limit=100
    )
    assert sorted(m.uid for m in threaded.messages) == wanted


@pytest.mark.parametrize("text_first", [False, True])
async def test_both_sqlite_plans_find_the_same(
    db: Database, text_first: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SQLite fetches few matches by id and walks the folder index for many: same answers."""
    for name in ("TEXT_FIRST_MAX", "TEXT_FIRST_MAX_COUNTED"):
        monkeypatch.setattr(search, name, 10_000 if text_first else 0)
    await fill()
    assert await uids("report") == [1, 2, 4]
    assert await uids("report is:unread") == [2, 4]
    assert await uids("report -lunch after:2026-01-11") == [4]
    assert await uids("-report is:unread") == [5]


async def test_index_follows_moves_copies_edits_and_deletes(db: Database) -> None:
    await fill()
    bus = MemoryBus()
    await messages.set_flags(ALICE, "INBOX", [2], ["\\Seen"], bus=bus)
    assert await uids("lunch is:read") == [2, 3]
    await messages.move(ALICE, "INBOX", [1], "Trash", bus=bus)
    await messages.copy(ALICE, "INBOX", [4], "Junk", bus=bus)
    assert await uids("quarterly") == [4]
    assert await uids("quarterly", "Trash") == [1]
    assert await uids("body:numbers", "Junk") == [1]
    await messages.delete(ALICE, "INBOX", [4], bus=bus)
    assert await uids("quarterly") == []
    await Message.filter(subject="Newsletter").update(subject="Monthly bulletin")
    assert await uids("subject:bulletin") == [5]
    assert await uids("newsletter") == []
    await messages.delete_mailbox("zed@example.test", bus=bus)
    await messages.purge_mailbox(ALICE, bus=bus)
    assert await uids("lunch") == []
    await check_index(db)


@pytest_asyncio.fixture(params=["sqlite", "postgresql"])
async def before_search(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    """A fresh database migrated up to 0002: the schema before the search index."""
    async with AsyncExitStack() as stack:
        if request.param == "sqlite":
            url = f"sqlite://{tmp_path / 'old.db'}"
        else:
            url = await stack.enter_async_context(fresh_postgres_database())
        database = Database(url)
        await database.open()
        stack.push_async_callback(database.close)
        executor = MigrationExecutor(get_connection(connection_name(url)), database.config["apps"])
        await executor.migrate([MigrationTarget("mailcue", "0002_mail_store")])
        yield database


async def test_migration_indexes_messages_stored_before_it(before_search: Database) -> None:
    client = get_connection(connection_name(before_search.url))
    sqlite = before_search.engine == "sqlite"
    # Rows written with SQL: the models describe the newest schema, not 0002's.
    two = ("?", "?") if sqlite else ("$1", "$2")
    await client.execute_query(
        "INSERT INTO mailboxes (id, address, display_name, last_uid_validity, created_at)"
        f" VALUES ({two[0]}, {two[1]}, '', 1, CURRENT_TIMESTAMP)",
        [str(uuid4()) if sqlite else uuid4(), ALICE],
    )
    mailbox_id = (await client.execute_query_dict("SELECT id FROM mailboxes"))[0]["id"]
    await client.execute_query(
        "INSERT INTO folders (mailbox_id, name, subscribed, uid_validity, uid_next,"
        " highest_modseq, message_count, unseen_count, total_bytes, created_at)"
        f" VALUES ({two[0]}, 'INBOX', TRUE, 1, 3, 1, 2, 2, 0, CURRENT_TIMESTAMP)",
        [mailbox_id],
    )
    folder = await get_folder(ALICE, "INBOX")
    columns = (
        "folder_id, uid, flags, keywords, modseq, internal_date, size, message_id, subject,"
        ' from_addr, from_name, to_addrs, cc_addrs, "references", thread_id, has_attachments,'
        " preview, is_signed, is_encrypted, raw"
    )
    marks = ", ".join("?" if sqlite else f"${n}" for n in range(1, 21))
    for uid, (subject, body, options, _, _) in enumerate(INBOX_MAIL[:2], start=1):
        raw = mail(subject, body, **options)
        await client.execute_query(
            f"INSERT INTO messages ({columns}) VALUES ({marks})",
            [folder.id, uid, 0, "", 1, DAY, len(raw), "", subject, "", "", "[]", "[]", "[]",
             "", False, "", False, False, raw],
        )  # fmt: skip
    executor = MigrationExecutor(client, before_search.config["apps"])
    await executor.migrate([MigrationTarget("mailcue", "0003_search_index")])
    assert await uids("body:numbers") == [1]
    assert await uids("wait noon") == [2]
    await check_index(before_search)


async def test_the_full_text_index_is_used(db: Database) -> None:
    bus = MemoryBus()
    await mailboxes.create_mailbox(ALICE, bus=bus)
    batch = [
        Incoming(raw=mail(f"note {n}", f"body {n} filler words"), recipients=(ALICE,))
        for n in range(2000)
    ]
    await ingest.ingest_many(batch, bus=bus)
    folder_id = (await get_folder(ALICE, "INBOX")).id
    client = get_connection(connection_name(db.url))
    query = parse_search("1999 is:unread")
    if db.engine == "sqlite":
        for text_first in (False, True):
            sql = search.search_sql(
                client, folder_id, query, offset=0, limit=50, order=ORDER,
                text_first=text_first,
            )  # fmt: skip
            for statement in (sql.count, sql.page):
                plan = await client.execute_query_dict(
                    "EXPLAIN QUERY PLAN " + statement.sql, statement.values
                )
                steps = [str(row["detail"]) for row in plan]
                assert any("messages_fts VIRTUAL TABLE INDEX" in step for step in steps), steps
                # No step reads the whole table: rows come by id or from the covering index.
                scans = [step for step in steps if step.startswith("SCAN ")]
                assert all("VIRTUAL TABLE" in step for step in scans), steps
                assert any(
                    "COVERING INDEX" in step or "INTEGER PRIMARY KEY" in step for step in steps
                ), steps
        return
    sql = search.search_sql(client, folder_id, query, offset=0, limit=50, order=ORDER)
    # VACUUM moves the rows from GIN's pending list into the index proper; until then the
    # planner prices the index as a scan of that list.
    await client.execute_script("VACUUM ANALYZE messages")
    for statement in (sql.count, sql.page):
        async with in_transaction(connection_name(db.url)) as transaction:
            await transaction.execute_script("SET LOCAL enable_seqscan = off")
            rows = await transaction.execute_query_dict(
                "EXPLAIN " + statement.sql, statement.values
            )
        plan = "\n".join(str(row["QUERY PLAN"]) for row in rows)
        assert "Bitmap Index Scan on messages_search_vector" in plan, plan


async def check_index(db: Database) -> None:
    """SQLite: FTS5 checks its index against the content table (fts5.html, section 6.6)."""
    if db.engine == "sqlite":
        await get_connection(connection_name(db.url)).execute_query(
            "INSERT INTO messages_fts(messages_fts, rank) VALUES ('integrity-check', 1)"
        )
