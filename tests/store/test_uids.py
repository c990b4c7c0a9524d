"""UIDs under concurrent writers, UIDVALIDITY, and mod-sequences, on both engines."""

from __future__ import annotations

import asyncio

from mailcue_server.events.memory import MemoryBus
from mailcue_server.store import appends, folder_counts, ingest, mailboxes, messages, uids
from mailcue_server.store.db import Database
from mailcue_server.store.ingest import Incoming
from mailcue_server.store.mail_models import Folder, Message

pytest_plugins = ["mail_db"]  # the parametrised ``db`` fixture (tests/store/mail_db.py)

ADDRESS = "load@example.test"
TOTAL = 2000
WRITERS = 8
BATCH = 25


def mail(writer: int, n: int) -> bytes:
    return f"From: w{writer}@example.test\r\nSubject: {writer}/{n}\r\n\r\nbody\r\n".encode()


async def test_concurrent_writers_get_strictly_increasing_uids_visible_in_order(
    db: Database,
) -> None:
    """8 writers, 2,000 messages, one folder; a reader watches what becomes visible.

    Half the writers append one message per transaction, half deliver batches
    (group commit). The reader checks the property IMAP clients rely on: a
    UID that appears is above every UID seen before, so no message ever
    turns up below a UIDNEXT a client has already been told.
    """
    bus = MemoryBus()
    await mailboxes.create_mailbox(ADDRESS, bus=bus)
    per_writer = TOTAL // WRITERS
    done = asyncio.Event()
    violations: list[tuple[int, int]] = []
    polls = 0

    async def appender(writer: int) -> None:
        for n in range(per_writer):
            await appends.append(ADDRESS, "INBOX", mail(writer, n), bus=bus)

    async def batcher(writer: int) -> None:
        for start in range(0, per_writer, BATCH):
            batch = [
                Incoming(raw=mail(writer, n), recipients=(ADDRESS,))
                for n in range(start, start + BATCH)
            ]
            await ingest.ingest_many(batch, bus=bus)

    async def watcher() -> None:
        nonlocal polls
        seen: set[int] = set()
        highest = 0
        while not done.is_set():
            visible = set(await Message.filter(folder__name="INBOX").values_list("uid", flat=True))
            new = visible - seen
            if new and min(new) <= highest:
                violations.append((min(new), highest))
            seen |= new
            highest = max(seen, default=0)
            polls += 1
            await asyncio.sleep(0.01)

    watching = asyncio.create_task(watcher())
    writers = [appender(w) if w % 2 else batcher(w) for w in range(WRITERS)]
    await asyncio.gather(*writers)
    done.set()
    await watching

    assert violations == []
    assert polls > 3
    rows = await Message.filter(folder__name="INBOX").order_by("id").values_list("uid", flat=True)
    uids_in_insert_order = [int(uid) for uid in rows]
    assert uids_in_insert_order == sorted(uids_in_insert_order)  # allocation order = insert order
    assert sorted(uids_in_insert_order) == list(range(1, TOTAL + 1))  # distinct, and no gaps here
    status = await folder_counts.folder_status(ADDRESS)
    assert (status.exists, status.unseen, status.uid_next) == (TOTAL, TOTAL, TOTAL + 1)

    # Deleting the highest UID does not hand it out again.
    await messages.delete(ADDRESS, "INBOX", [TOTAL], bus=bus)
    again = await appends.append(ADDRESS, "INBOX", mail(0, -1), bus=bus)
    assert again.uid == TOTAL + 1


async def test_uid_validity_differs_per_folder_and_never_repeats(db: Database) -> None:
    bus = MemoryBus()
    mailbox = await mailboxes.create_mailbox("v@example.test", bus=bus)
    folders = await mailboxes.list_folders("v@example.test")
    validities = [f.uid_validity for f in folders]
    assert len(set(validities)) == len(validities)
    async with uids.write_transaction():
        # A clock that went backwards still yields values above the earlier ones.
        first = await uids.allocate_uid_validities(mailbox.id, 2, now=1000)
    assert first == max(validities) + 1
    async with uids.write_transaction():
        assert await uids.allocate_uid_validities(mailbox.id, 1, now=1000) == first + 2


async def test_every_change_gets_a_higher_modseq(db: Database) -> None:
    bus = MemoryBus()
    await mailboxes.create_mailbox("m@example.test", bus=bus)
    seen = [(await folder_counts.folder_status("m@example.test")).highest_modseq]

    async def step() -> int:
        status = await folder_counts.folder_status("m@example.test")
        assert status.highest_modseq > seen[-1]
        seen.append(status.highest_modseq)
        return status.highest_modseq

    await appends.append("m@example.test", "INBOX", mail(0, 0), bus=bus)
    appended = await step()
    await messages.set_flags("m@example.test", "INBOX", [1], ["\\Seen"], bus=bus)
    flagged = await step()
    await messages.delete("m@example.test", "INBOX", [1], bus=bus)
    await step()
    assert appended < flagged


async def test_lock_folders_in_id_order_skips_missing(db: Database) -> None:
    bus = MemoryBus()
    await mailboxes.create_mailbox("l@example.test", bus=bus)
    ids = [f.id for f in await Folder.all().order_by("-id")]
    async with uids.write_transaction():
        locked = await uids.lock_folders([*ids, 999_999])
        assert list(locked) == sorted(ids)
        assert list(locked[ids[0]].allocate_uids(3)) == [1, 2, 3]
        assert list(locked[ids[0]].allocate_uids(1)) == [4]
