"""The write path and its reads on both engines: bytes, index, flags, copy/move, delete, events."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from mailcue_server.errors import Invalid, LimitExceeded, NotFound
from mailcue_server.events.bus import ALL_EVENTS, Event, EventType, channel_for
from mailcue_server.events.memory import MemoryBus
from mailcue_server.store import (
    aliases,
    appends,
    folder_counts,
    ingest,
    mailboxes,
    message_queries,
    messages,
)
from mailcue_server.store.db import Database
from mailcue_server.store.domain_models import Alias
from mailcue_server.store.inbox_cache import InboxCache
from mailcue_server.store.ingest import Incoming, IngestQueue
from mailcue_server.store.mail_models import Folder, Message, decode_flags, encode_flags
from mailcue_server.store.message_queries import Sort
from mailcue_server.store.messages import FlagMode

pytest_plugins = ["mail_db"]  # the parametrised ``db`` fixture (tests/store/mail_db.py)

DATA = Path(__file__).parent.parent / "data"

REPORT = (
    b"From: =?UTF-8?Q?J=C3=B6rg_M=C3=BCller?= <joerg@example.test>\r\n"
    b"To: Alice <alice@example.test>\r\n"
    b"Subject: =?UTF-8?B?R3LDvMOfZSBhdXMgS8O2bG4=?=\r\n"
    b"Date: Tue, 24 Nov 2026 08:30:00 +0100\r\n"
    b"Message-ID: <report-7@example.test>\r\n"
    b'Content-Type: multipart/mixed; boundary="b1"\r\n'
    b"\r\n"
    b"--b1\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"Content-Transfer-Encoding: 8bit\r\n"
    b"\r\n"
    b"Der Bericht f\xc3\xbcr November.\r\n"
    b"--b1\r\n"
    b'Content-Type: application/octet-stream; name="data.bin"\r\n'
    b"Content-Disposition: attachment\r\n"
    b"\r\n"
    b"\x00\x01\x02\xff\xfe\r\n"
    b"--b1--\r\n"
)


def mail(subject: str, body: bytes = b"Hello.\r\n") -> bytes:
    return f"From: s@example.test\r\nSubject: {subject}\r\n\r\n".encode() + body


async def make_mailbox(address: str, bus: MemoryBus | None = None) -> None:
    await mailboxes.create_mailbox(address, bus=bus or MemoryBus())


@pytest.mark.parametrize(
    "raw",
    [
        REPORT,
        b"Subject: every byte\r\n\r\n" + bytes(range(256)) + b"\r\n",
        b"Subject: LF only\n\nline one\nline two\n",
        b"Subject: bare CR and no final newline\r\n\r\nA\rB\r\n\r\n.\r\nend",
        (DATA / "smtp" / "utf8.eml").read_bytes(),
    ],
    ids=["multipart", "all-bytes", "lf-only", "bare-cr", "utf8-headers"],
)
async def test_raw_bytes_round_trip_exactly(db: Database, raw: bytes) -> None:
    bus = MemoryBus()
    result = await ingest.ingest(raw, ["alice@example.test"], bus=bus)
    [stored] = result.stored
    assert await message_queries.raw_bytes("alice@example.test", "INBOX", stored.uid) == raw
    message = await message_queries.get_by_uid("alice@example.test", "INBOX", stored.uid)
    assert (message.raw_bytes, message.size) == (raw, len(raw))
    if b"\x00" in raw:
        # APPEND and inject follow the receipt rules (mail/header_limits.py): a NUL is
        # no mail data (RFC 2045 2.7-2.8; IMAP literals exclude it), so nothing is stored.
        with pytest.raises(LimitExceeded, match="NUL"):
            await appends.append("alice@example.test", "Drafts", raw, bus=bus)
        assert (await message_queries.list_page("alice@example.test", "Drafts")).total == 0
        return
    appended = await appends.append("alice@example.test", "Drafts", raw, bus=bus)
    assert await message_queries.raw_bytes("alice@example.test", "Drafts", appended.uid) == raw


async def test_index_fields_are_stored(db: Database) -> None:
    await ingest.ingest(REPORT, ["alice@example.test"], bus=MemoryBus())
    message = await message_queries.get_by_uid("alice@example.test", "INBOX", 1)
    assert message.subject == "Grüße aus Köln"
    assert (message.from_name, message.from_addr) == ("Jörg Müller", "joerg@example.test")
    assert message.to_addrs == ["alice@example.test"]
    assert message.message_id == "<report-7@example.test>"
    assert message.date_header == datetime(2026, 11, 24, 7, 30, tzinfo=UTC)
    assert message.has_attachments
    assert message.preview == "Der Bericht für November."
    assert message.thread_id


async def test_hostile_header_bytes_store_on_every_engine(db: Database) -> None:
    raw = b"Subject: nul\x00byte \xff\xfe\r\nMessage-ID: <\x00@x>\r\n\r\n\x00body"
    await ingest.ingest(raw, ["alice@example.test"], bus=MemoryBus())
    message = await message_queries.get_by_uid("alice@example.test", "INBOX", 1)
    assert message.raw_bytes == raw
    assert "\x00" not in message.subject


async def test_ingest_to_several_recipients_and_auto_created_mailboxes(db: Database) -> None:
    bus = MemoryBus()
    await make_mailbox("alice@example.test")
    async with bus.subscribe([ALL_EVENTS]) as events:
        result = await ingest.ingest(
            mail("hi"), ["Alice@example.test", "bob@example.test", "alice@example.test"], bus=bus
        )
        await bus.close()
        published = [(e.type, e.mailbox) async for e in events]
    assert [(s.mailbox, s.uid) for s in result.stored] == [
        ("alice@example.test", 1),
        ("bob@example.test", 1),
    ]
    assert published == [
        (EventType.MAILBOX_CREATED, "bob@example.test"),
        (EventType.EMAIL_RECEIVED, "alice@example.test"),
        (EventType.EMAIL_RECEIVED, "bob@example.test"),
    ]


async def test_production_mode_creates_no_mailbox(db: Database) -> None:
    await make_mailbox("alice@example.test")
    result = await ingest.ingest(
        mail("hi"),
        ["alice@example.test", "ghost@example.test"],
        bus=MemoryBus(),
        create_mailboxes=False,
    )
    assert [s.mailbox for s in result.stored] == ["alice@example.test"]
    assert result.unknown == ("ghost@example.test",)
    assert await mailboxes.find_mailbox("ghost@example.test") is None


async def test_a_cached_inbox_that_went_stale_is_looked_up_again(db: Database) -> None:
    """The INBOX cache never delivers to a mailbox deleted, or to one that reused its ids."""
    bus = MemoryBus()
    cache = InboxCache()

    async def deliver(subject: str, *, create: bool = True) -> ingest.IngestResult:
        item = Incoming(raw=mail(subject), recipients=("alice@example.test",))
        [result] = await ingest.ingest_many(
            [item], bus=bus, create_mailboxes=create, inboxes=cache
        )
        return result

    await deliver("first")
    old_inbox = await mailboxes.get_folder("alice@example.test")
    assert cache.lookup(["alice@example.test"]) == {"alice@example.test": old_inbox.id}
    await messages.delete_mailbox("alice@example.test", bus=bus)
    # bob's INBOX may get the freed folder id (SQLite reuses the highest rowid).
    await make_mailbox("bob@example.test")

    assert (await deliver("gone", create=False)).unknown == ("alice@example.test",)
    assert cache.lookup(["alice@example.test"]) == {}
    [stored] = (await deliver("again")).stored
    assert (stored.mailbox, stored.uid) == ("alice@example.test", 1)
    page = await message_queries.list_page("alice@example.test")
    assert [m.subject for m in page.messages] == ["again"]
    assert (await folder_counts.folder_status("bob@example.test")).exists == 0
    [cached] = cache.lookup(["alice@example.test"]).values()
    assert cached == (await mailboxes.get_folder("alice@example.test")).id

    # Whether or not this engine reuses ids: a cached id of another mailbox's INBOX,
    # alone or next to that mailbox's own (fresh) entry.
    bob_inbox = (await mailboxes.get_folder("bob@example.test")).id
    cache.remember({"alice@example.test": bob_inbox})
    [stored] = (await deliver("checked")).stored
    assert (stored.mailbox, stored.uid) == ("alice@example.test", 2)
    cache.forget(["bob@example.test"])
    cache.remember({"alice@example.test": bob_inbox})
    both = Incoming(raw=mail("both"), recipients=("bob@example.test", "alice@example.test"))
    [result] = await ingest.ingest_many([both], bus=bus, inboxes=cache)
    assert [(s.mailbox, s.uid) for s in result.stored] == [
        ("bob@example.test", 1),
        ("alice@example.test", 3),
    ]
    assert (await folder_counts.folder_status("bob@example.test")).exists == 1


async def test_a_batch_applies_aliases_to_the_messages_that_ask(db: Database) -> None:
    await Alias.all().delete()  # PostgreSQL: one database per module, aliases not emptied
    source = aliases.parse_source("sales@example.test")
    await aliases.create_alias(
        source, aliases.parse_destinations("alice@example.test, bob@x.test")
    )
    batch = [
        Incoming(raw=mail("one"), recipients=("Sales@example.test",), expand_aliases=True),
        Incoming(
            raw=mail("two"),
            recipients=("sales@example.test", "alice@example.test"),
            expand_aliases=True,
        ),
        Incoming(raw=mail("three"), recipients=("sales@example.test",)),
    ]
    try:
        results = await ingest.ingest_many(batch, bus=MemoryBus())
    finally:
        await Alias.all().delete()
    assert [[s.mailbox for s in result.stored] for result in results] == [
        ["alice@example.test", "bob@x.test"],
        ["alice@example.test", "bob@x.test"],
        ["sales@example.test"],
    ]


def test_inbox_cache_forgets_the_least_recently_used() -> None:
    cache = InboxCache(size=2)
    cache.remember({"a@x.test": 1, "b@x.test": 2})
    assert cache.lookup(["a@x.test"]) == {"a@x.test": 1}
    cache.remember({"c@x.test": 3})
    assert cache.lookup(["a@x.test", "b@x.test", "c@x.test"]) == {"a@x.test": 1, "c@x.test": 3}


async def test_append_with_flags_and_date(db: Database) -> None:
    await make_mailbox("alice@example.test")
    when = datetime(2020, 1, 2, 3, 4, 5, tzinfo=UTC)
    stored = await appends.append(
        "alice@example.test",
        "Sent",
        mail("sent"),
        bus=MemoryBus(),
        flags=["\\Seen", "\\flagged", "$Forwarded"],
        internal_date=when,
    )
    sent = await folder_counts.folder_status("alice@example.test", "Sent")
    assert (stored.uid, stored.uid_validity) == (1, sent.uid_validity)
    assert (sent.exists, sent.unseen, sent.uid_next) == (1, 0, 2)
    message = await message_queries.get_by_uid("alice@example.test", "Sent", 1)
    assert decode_flags(message.flags, message.keywords) == ["\\Seen", "\\Flagged", "$Forwarded"]
    assert message.internal_date == when
    with pytest.raises(NotFound):
        await appends.append("alice@example.test", "Nope", mail("x"), bus=MemoryBus())


async def test_a_subscriber_reacting_to_an_event_finds_the_message(db: Database) -> None:
    bus = MemoryBus()
    await make_mailbox("alice@example.test")
    found: list[str] = []

    async def react() -> None:
        async for event in events:
            message = await message_queries.get_by_uid(
                event.mailbox, event.folder or "", event.uid or 0
            )
            found.append(message.subject)
            if len(found) == 20:
                return

    async with bus.subscribe([channel_for("alice@example.test")]) as events:
        reader = asyncio.create_task(react())
        for n in range(10):
            await ingest.ingest(mail(f"smtp {n}"), ["alice@example.test"], bus=bus)
            await appends.append("alice@example.test", "INBOX", mail(f"append {n}"), bus=bus)
        await asyncio.wait_for(reader, 10)
    assert len(found) == 20


async def test_a_failed_transaction_publishes_nothing(db: Database) -> None:
    bus = MemoryBus()
    await make_mailbox("alice@example.test")
    await appends.append("alice@example.test", "INBOX", mail("one"), bus=bus)
    # Corrupt the counter: the next UID collides, and the unique index stops the insert.
    await Folder.filter(name="INBOX").update(uid_next=1)
    async with bus.subscribe([ALL_EVENTS]) as events:
        with pytest.raises(IntegrityError):
            await appends.append("alice@example.test", "INBOX", mail("two"), bus=bus)
        with pytest.raises(IntegrityError):
            await ingest.ingest(mail("three"), ["alice@example.test"], bus=bus)
        await bus.close()
        assert [event async for event in events] == []
    status = await folder_counts.folder_status("alice@example.test")
    assert (status.exists, status.unseen, status.uid_next) == (1, 1, 1)  # rolled back


async def test_writes_refuse_to_run_inside_a_callers_transaction(db: Database) -> None:
    await make_mailbox("alice@example.test")
    with pytest.raises(RuntimeError, match="inside a transaction"):
        async with in_transaction():
            await appends.append("alice@example.test", "INBOX", mail("x"), bus=MemoryBus())


async def test_set_flags_modes_counters_and_events(db: Database) -> None:
    bus = MemoryBus()
    await make_mailbox("alice@example.test")
    for n in range(3):
        await appends.append("alice@example.test", "INBOX", mail(f"m{n}"), bus=bus)
    before = await folder_counts.folder_status("alice@example.test")
    async with bus.subscribe([ALL_EVENTS]) as events:
        result = await messages.set_flags(
            "alice@example.test",
            "INBOX",
            [1, 2, 99],
            ["\\Seen", "work"],
            bus=bus,
            mode=FlagMode.ADD,
        )
        again = await messages.set_flags(
            "alice@example.test", "INBOX", [1], ["\\Seen"], bus=bus, mode=FlagMode.ADD
        )
        removed = await messages.set_flags(
            "alice@example.test", "INBOX", [2], ["\\Seen"], bus=bus, mode=FlagMode.REMOVE
        )
        await bus.close()
        published = [(e.type, e.uid, e.data["flags"]) async for e in events]
    assert result == {1: ["\\Seen", "work"], 2: ["\\Seen", "work"]}
    assert again == {1: ["\\Seen", "work"]}
    assert removed == {2: ["work"]}
    assert published == [
        (EventType.EMAIL_FLAGS_CHANGED, 1, ["\\Seen", "work"]),
        (EventType.EMAIL_FLAGS_CHANGED, 2, ["\\Seen", "work"]),
        (EventType.EMAIL_FLAGS_CHANGED, 2, ["work"]),
    ]
    after = await folder_counts.folder_status("alice@example.test")
    assert (before.unseen, after.unseen) == (3, 2)
    assert after.highest_modseq == before.highest_modseq + 2  # no-op STORE changes nothing
    replaced = await messages.set_flags(
        "alice@example.test", "INBOX", [1, 2, 3], ["\\Deleted"], bus=bus
    )
    assert set(map(tuple, replaced.values())) == {("\\Deleted",)}
    assert (await folder_counts.folder_status("alice@example.test")).unseen == 3


async def test_copy_and_move(db: Database) -> None:
    bus = MemoryBus()
    await make_mailbox("alice@example.test")
    for n in range(3):
        await ingest.ingest(mail(f"m{n}"), ["alice@example.test"], bus=bus)
    await messages.set_flags("alice@example.test", "INBOX", [2], ["\\Seen"], bus=bus)
    await appends.append("alice@example.test", "Junk", mail("junk"), bus=bus)
    copied = await messages.copy("alice@example.test", "INBOX", [1, 2, 7], "Junk", bus=bus)
    assert copied == {1: 2, 2: 3}
    async with bus.subscribe([ALL_EVENTS]) as events:
        moved = await messages.move("alice@example.test", "INBOX", [2, 3], "Trash", bus=bus)
        await bus.close()
        published = [(e.type, e.folder, e.uid, e.data["from_uid"]) async for e in events]
    assert moved == {2: 1, 3: 2}
    assert published == [
        (EventType.EMAIL_MOVED, "Trash", 1, 2),
        (EventType.EMAIL_MOVED, "Trash", 2, 3),
    ]
    counts = {
        s.name: (s.exists, s.unseen)
        for s in (await folder_counts.mailbox_counts("alice@example.test")).folders
    }
    assert counts["INBOX"] == (1, 1)
    assert counts["Junk"] == (3, 2)
    assert counts["Trash"] == (2, 1)
    trashed = await message_queries.get_by_uid("alice@example.test", "Trash", 1)
    assert trashed.subject == "m1"
    assert decode_flags(trashed.flags, trashed.keywords) == ["\\Seen"]
    assert trashed.raw_bytes == mail("m1")
    with pytest.raises(Invalid):
        await messages.move("alice@example.test", "INBOX", [1], "inbox", bus=bus)


async def test_expunge_delete_and_purge(db: Database) -> None:
    bus = MemoryBus()
    await make_mailbox("alice@example.test")
    for n in range(5):
        await ingest.ingest(mail(f"m{n}"), ["alice@example.test"], bus=bus)
    await messages.set_flags("alice@example.test", "INBOX", [2, 4], ["\\Deleted"], bus=bus)
    async with bus.subscribe([ALL_EVENTS]) as events:
        assert await messages.expunge("alice@example.test", "INBOX", bus=bus, uids_=[1, 2]) == [2]
        assert await messages.expunge("alice@example.test", "INBOX", bus=bus) == [4]
        assert await messages.delete("alice@example.test", "INBOX", [1, 99], bus=bus) == [1]
        await bus.close()
        assert [(e.type, e.uid) async for e in events] == [
            (EventType.EMAIL_DELETED, 2),
            (EventType.EMAIL_DELETED, 4),
            (EventType.EMAIL_DELETED, 1),
        ]
    status = await folder_counts.folder_status("alice@example.test")
    assert (status.exists, status.unseen, status.uid_next) == (2, 2, 6)
    await appends.append("alice@example.test", "Sent", mail("sent"), bus=MemoryBus())
    assert await messages.purge_mailbox("alice@example.test", bus=MemoryBus()) == 3
    counts = await folder_counts.mailbox_counts("alice@example.test")
    assert (counts.emails, counts.unread, counts.size_bytes) == (0, 0, 0)
    assert (await folder_counts.folder_status("alice@example.test")).uid_next == 6  # never reused


async def test_delete_mailbox_removes_its_mail(db: Database) -> None:
    bus = MemoryBus()
    await ingest.ingest(mail("x"), ["alice@example.test", "bob@example.test"], bus=bus)
    async with bus.subscribe([channel_for("alice@example.test")]) as events:
        await messages.delete_mailbox("alice@example.test", bus=bus)
        assert (await anext(events)).type is EventType.MAILBOX_DELETED
    assert await Message.all().count() == 1
    with pytest.raises(NotFound):
        await folder_counts.folder_status("alice@example.test")


async def test_list_page_sort_search_and_counts(db: Database) -> None:
    bus = MemoryBus()
    await make_mailbox("alice@example.test")
    start = datetime(2026, 1, 1, tzinfo=UTC)
    for n in range(7):
        await appends.append(
            "alice@example.test",
            "INBOX",
            mail(f"report {n}" if n % 2 else f"note {n}"),
            bus=bus,
            internal_date=start + timedelta(hours=n),
        )
    await messages.set_flags("alice@example.test", "INBOX", [1, 2], ["\\Seen"], bus=bus)
    page = await message_queries.list_page("alice@example.test", offset=0, limit=3)
    assert (page.total, [m.uid for m in page.messages]) == (7, [7, 6, 5])
    page = await message_queries.list_page(
        "alice@example.test", offset=6, limit=3, sort=Sort.DATE_ASC
    )
    assert [m.uid for m in page.messages] == [7]
    found = await message_queries.list_page("alice@example.test", search="REPORT")
    assert (found.total, [m.subject for m in found.messages]) == (
        3,
        ["report 5", "report 3", "report 1"],
    )
    threaded = await message_queries.list_page("alice@example.test", sort=Sort.THREAD)
    assert len(threaded.messages) == 7
    counts = await folder_counts.mailbox_counts("alice@example.test")
    assert (counts.emails, counts.unread, counts.junk) == (7, 5, 0)
    assert counts.size_bytes == sum(len(mail(m.subject)) for m in threaded.messages)


async def test_group_commit_queue(db: Database) -> None:
    bus = MemoryBus()
    await make_mailbox("alice@example.test")
    queue = IngestQueue(bus=bus, create_mailboxes=True, max_batch=50)
    await queue.start()
    try:
        results = await asyncio.gather(
            *(
                queue.submit(Incoming(raw=mail(f"q{n}"), recipients=("alice@example.test",)))
                for n in range(200)
            )
        )
    finally:
        await queue.close()
    uids = [r.stored[0].uid for r in results]
    assert sorted(uids) == list(range(1, 201))
    transactions = {m.modseq for m in await Message.filter(folder__name="INBOX")}
    assert 4 <= len(transactions) < 200  # one mod-sequence per transaction: they were grouped


async def test_group_commit_isolates_a_failing_message(db: Database) -> None:
    bus = MemoryBus()
    await make_mailbox("good@example.test")
    await make_mailbox("bad@example.test")
    await appends.append("bad@example.test", "INBOX", mail("first"), bus=bus)
    bad = await mailboxes.get_folder("bad@example.test")
    await Folder.filter(id=bad.id).update(uid_next=1)  # the next insert there collides
    queue = IngestQueue(bus=bus, create_mailboxes=False)
    await queue.start()
    try:
        outcomes = await asyncio.gather(
            queue.submit(Incoming(raw=mail("a"), recipients=("good@example.test",))),
            queue.submit(Incoming(raw=mail("b"), recipients=("bad@example.test",))),
            queue.submit(Incoming(raw=mail("c"), recipients=("good@example.test",))),
            return_exceptions=True,
        )
    finally:
        await queue.close()
    assert isinstance(outcomes[1], IntegrityError)
    assert (await folder_counts.folder_status("good@example.test")).exists == 2


def test_flag_encoding() -> None:
    assert encode_flags(["\\SEEN", "\\Recent", "b", "a", "a", "\\Draft"]) == (17, "a b")
    assert decode_flags(17, "a b") == ["\\Seen", "\\Draft", "a", "b"]


def test_events_are_typed() -> None:
    event = Event(EventType.EMAIL_RECEIVED, "a@example.test", "INBOX", 1)
    assert event.type == "email.received"
