"""Folder management and the change reads IMAP sessions use, on both engines."""

from __future__ import annotations

import pytest

from mailcue_server.errors import Conflict, Invalid, NotFound
from mailcue_server.events.bus import ALL_EVENTS, Event, EventType
from mailcue_server.events.memory import MemoryBus
from mailcue_server.store import appends, changes, folders, mailboxes, messages
from mailcue_server.store.db import Database
from mailcue_server.store.messages import FlagMode

pytest_plugins = ["mail_db"]  # the parametrised ``db`` fixture (tests/store/mail_db.py)

ALICE = "alice@example.test"


def mail(subject: str) -> bytes:
    return f"From: s@example.test\r\nSubject: {subject}\r\n\r\nHello.\r\n".encode()


async def drain(bus: MemoryBus, events: object) -> list[Event]:
    await bus.close()
    return [event async for event in events]  # type: ignore[attr-defined]


async def test_delete_folder_removes_its_mail_through_the_write_path(db: Database) -> None:
    bus = MemoryBus()
    await mailboxes.create_mailbox(ALICE, bus=bus)
    await mailboxes.create_folder(ALICE, "Work", bus=bus)
    await mailboxes.create_folder(ALICE, "Work/Old", bus=bus)
    for subject in ("one", "two"):
        await appends.append(ALICE, "Work", mail(subject), bus=bus)
    async with bus.subscribe([ALL_EVENTS]) as events:
        await folders.delete_folder(ALICE, "Work", bus=bus)
        published = await drain(bus, events)
    assert [(e.type, e.folder, e.uid) for e in published] == [
        (EventType.EMAIL_DELETED, "Work", 1),
        (EventType.EMAIL_DELETED, "Work", 2),
        (EventType.FOLDER_CHANGED, "Work", None),
    ]
    assert published[-1].data == {"change": "deleted"}
    names = [state.name for state in await folders.folder_states(ALICE)]
    assert names == ["INBOX", "Sent", "Drafts", "Trash", "Junk", "Work/Old"]
    with pytest.raises(NotFound):
        await folders.delete_folder(ALICE, "Work", bus=MemoryBus())


@pytest.mark.parametrize("name", ["INBOX", "inbox", "Sent", "Trash"])
async def test_inbox_and_special_use_folders_stay(db: Database, name: str) -> None:
    bus = MemoryBus()
    await mailboxes.create_mailbox(ALICE, bus=bus)
    with pytest.raises(Invalid):
        await folders.delete_folder(ALICE, name, bus=bus)
    with pytest.raises(Invalid):
        await folders.rename_folder(ALICE, name, "Elsewhere", bus=bus)


async def test_rename_moves_children_and_keeps_uid_validity(db: Database) -> None:
    bus = MemoryBus()
    await mailboxes.create_mailbox(ALICE, bus=bus)
    for name in ("Work", "Work/2025", "Work/2025/Q1", "Workshop", "Other"):
        await mailboxes.create_folder(ALICE, name, bus=bus)
    before = {s.name: s.uid_validity for s in await folders.folder_states(ALICE)}
    async with bus.subscribe([ALL_EVENTS]) as events:
        await folders.rename_folder(ALICE, "Work", "Projects", bus=bus)
        published = await drain(bus, events)
    after = {s.name: s.uid_validity for s in await folders.folder_states(ALICE)}
    assert after["Projects"] == before["Work"]
    assert after["Projects/2025/Q1"] == before["Work/2025/Q1"]
    assert "Workshop" in after and "Work" not in after  # a prefix that is not a child stays
    assert {(e.folder, e.data["from"]) for e in published} == {
        ("Projects", "Work"),
        ("Projects/2025", "Work/2025"),
        ("Projects/2025/Q1", "Work/2025/Q1"),
    }
    with pytest.raises(Conflict):
        await folders.rename_folder(ALICE, "Other", "Projects", bus=bus)
    with pytest.raises(Invalid):
        await folders.rename_folder(ALICE, "Projects", "Projects/Inner", bus=bus)
    with pytest.raises(Conflict):
        await folders.rename_folder(ALICE, "Other", "INBOX", bus=bus)


async def test_subscriptions(db: Database) -> None:
    bus = MemoryBus()
    await mailboxes.create_mailbox(ALICE, bus=bus)
    await mailboxes.create_folder(ALICE, "Lists", bus=bus)
    await folders.set_subscribed(ALICE, "Lists", False, bus=bus)
    assert "Lists" not in await folders.subscribed_names(ALICE)
    await folders.set_subscribed(ALICE, "Lists", True, bus=bus)
    assert "Lists" in await folders.subscribed_names(ALICE)
    with pytest.raises(NotFound):
        await folders.set_subscribed(ALICE, "Missing", True, bus=bus)


async def test_changes_since_a_modseq(db: Database) -> None:
    bus = MemoryBus()
    await mailboxes.create_mailbox(ALICE, bus=bus)
    for subject in ("one", "two", "three"):
        await appends.append(ALICE, "INBOX", mail(subject), bus=bus)
    inbox = await mailboxes.get_folder(ALICE)
    state = await changes.folder_state(inbox.id)
    assert state is not None and (state.messages, state.uid_next) == (3, 4)
    everything = await changes.changed_since(inbox.id, None)
    assert [m.uid for m in everything] == [1, 2, 3]
    assert everything[0].internal_date.tzinfo is not None
    await messages.set_flags(ALICE, "INBOX", [2], ["\\Seen"], bus=bus, mode=FlagMode.ADD)
    await messages.delete(ALICE, "INBOX", [3], bus=bus)
    changed = await changes.changed_since(inbox.id, state.highest_modseq)
    assert [(m.uid, m.flags) for m in changed] == [(2, 1)]
    after = await changes.folder_state(inbox.id)
    assert after is not None and after.highest_modseq > state.highest_modseq
    assert await changes.uids(inbox.id) == [1, 2]
    raw = await changes.raw_messages(inbox.id, [1, 2, 3])
    assert sorted(raw) == [1, 2] and raw[1] == mail("one")
