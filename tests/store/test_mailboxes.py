"""Mailboxes and folders on both engines: creation, lookup, passwords, events."""

from __future__ import annotations

import asyncio

import pytest

from mailcue_server.errors import Conflict, Invalid, NotFound
from mailcue_server.events.bus import ALL_EVENTS, EventType
from mailcue_server.events.memory import MemoryBus
from mailcue_server.store import mailboxes, new_mailboxes, users
from mailcue_server.store.db import Database

pytest_plugins = ["mail_db"]  # the parametrised ``db`` fixture (tests/store/mail_db.py)


async def test_a_new_mailbox_has_the_default_folders(db: Database) -> None:
    bus = MemoryBus()
    async with bus.subscribe([ALL_EVENTS]) as events:
        mailbox = await mailboxes.create_mailbox(
            "Alice@Example.TEST", bus=bus, display_name="Alice"
        )
        event = await anext(events)
    assert mailbox.address == "alice@example.test"
    assert (event.type, event.mailbox) == (EventType.MAILBOX_CREATED, "alice@example.test")
    folders = await mailboxes.list_folders("ALICE@example.test")
    assert [(f.name, f.special_use) for f in folders] == [
        ("INBOX", None),
        ("Sent", "\\Sent"),
        ("Drafts", "\\Drafts"),
        ("Trash", "\\Trash"),
        ("Junk", "\\Junk"),
    ]
    assert all(f.uid_next == 1 and f.message_count == 0 for f in folders)
    assert len({f.uid_validity for f in folders}) == 5
    assert all(0 < f.uid_validity < 2**32 for f in folders)


async def test_addresses_are_unique_and_valid(db: Database) -> None:
    bus = MemoryBus()
    await mailboxes.create_mailbox("bob@example.test", bus=bus)
    with pytest.raises(Conflict):
        await mailboxes.create_mailbox("BOB@example.test", bus=bus)
    with pytest.raises(Invalid):
        await mailboxes.create_mailbox("not an address", bus=bus)
    with pytest.raises(NotFound):
        await mailboxes.get_mailbox("nobody@example.test")


async def test_concurrent_first_mail_creates_one_mailbox(db: Database) -> None:
    bus = MemoryBus()
    async with bus.subscribe([ALL_EVENTS]) as events:
        created = await asyncio.gather(
            *(mailboxes.get_or_create_mailbox("carol@example.test", bus=bus) for _ in range(5))
        )
        await bus.close()
        published = [event async for event in events]
    assert len({m.id for m in created}) == 1
    assert [e.type for e in published] == [EventType.MAILBOX_CREATED]


async def test_passwords(db: Database) -> None:
    bus = MemoryBus()
    await mailboxes.create_mailbox("dave@example.test", bus=bus, password="s3cret-pass")
    assert await mailboxes.check_password("Dave@example.test", "s3cret-pass") is not None
    assert await mailboxes.check_password("dave@example.test", "wrong") is None
    assert await mailboxes.check_password("nobody@example.test", "s3cret-pass") is None
    await mailboxes.set_password("dave@example.test", None)
    assert await mailboxes.check_password("dave@example.test", "s3cret-pass") is None


async def test_owner_and_listing(db: Database) -> None:
    bus = MemoryBus()
    owner = await users.create(username="erin", email="erin@example.test", password_hash="x")
    await mailboxes.create_mailbox("b@example.test", bus=bus, owner_id=owner.id, quota_bytes=10)
    await mailboxes.create_mailbox("a@example.test", bus=bus, owner_id=owner.id)
    await mailboxes.create_mailbox("c@example.test", bus=bus)
    mine = await mailboxes.list_mailboxes(owner.id)
    assert [m.address for m in mine] == ["a@example.test", "b@example.test"]
    assert [m.address for m in await mailboxes.list_mailboxes()] == [
        "a@example.test",
        "b@example.test",
        "c@example.test",
    ]


async def test_create_folder_gets_a_new_uid_validity(db: Database) -> None:
    bus = MemoryBus()
    await mailboxes.create_mailbox("frank@example.test", bus=bus)
    before = {f.uid_validity for f in await mailboxes.list_folders("frank@example.test")}
    async with bus.subscribe([ALL_EVENTS]) as events:
        folder = await mailboxes.create_folder("frank@example.test", "Archive/2026", bus=bus)
        event = await anext(events)
    assert folder.uid_validity > max(before)
    assert (event.type, event.folder) == (EventType.FOLDER_CHANGED, "Archive/2026")
    with pytest.raises(Conflict):
        await mailboxes.create_folder("frank@example.test", "Archive/2026", bus=bus)
    assert (await mailboxes.get_folder("frank@example.test", "inbox")).name == "INBOX"


async def test_many_new_mailboxes_at_once_leave_existing_ones_to_their_creator(
    db: Database,
) -> None:
    bus = MemoryBus()
    existing = await mailboxes.create_mailbox("taken@example.test", bus=bus)
    wanted = [f"new{n}@example.test" for n in range(40)] + [
        "TAKEN@example.test",
        "not an address",
        "New0@Example.TEST",  # the same as new0, once
    ]
    async with bus.subscribe([ALL_EVENTS]) as events:
        made = await new_mailboxes.make_mailboxes(wanted, bus=bus)
        created = list(made.created)
        announced = [await anext(events) for _ in created]

    assert created == sorted(f"new{n}@example.test" for n in range(40))
    inboxes = {
        address: f.id
        for address in [*created, "taken@example.test"]
        for f in await mailboxes.list_folders(address)
        if f.name == "INBOX"
    }
    assert made.inboxes == inboxes
    assert [(e.type, e.mailbox) for e in announced] == [
        (EventType.MAILBOX_CREATED, address) for address in created
    ]
    assert (await mailboxes.get_mailbox("taken@example.test")).id == existing.id
    assert len(await mailboxes.list_folders("taken@example.test")) == 5
    for address in created:
        folders = await mailboxes.list_folders(address)
        assert [f.name for f in folders] == ["INBOX", "Sent", "Drafts", "Trash", "Junk"]
        assert len({f.uid_validity for f in folders}) == 5
    # A folder made later still gets a UIDVALIDITY above those of the defaults.
    defaults = await mailboxes.list_folders("new1@example.test")
    later = await mailboxes.create_folder("new1@example.test", "Later", bus=bus)
    assert later.uid_validity > max(f.uid_validity for f in defaults)
    again = await new_mailboxes.make_mailboxes(["new1@example.test"], bus=bus)
    assert (again.created, again.inboxes) == (
        (),
        {"new1@example.test": inboxes["new1@example.test"]},
    )
