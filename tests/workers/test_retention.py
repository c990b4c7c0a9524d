"""The retention worker against a real node: what it removes, what it keeps, who hears of it.

Mail gets its age from when it was received (the IMAP internal date): SMTP
delivery stamps the arrival time, and API inject, like IMAP APPEND, keeps
the date the client gives. The worker is run with ``run_once()`` (or with a
clock set ahead), never by waiting for its interval.
"""

from __future__ import annotations

import asyncio
import smtplib
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import pytest_asyncio

from accounts import Account, admin, new_mailbox, set_retention
from live_events import Feed, Imap, sse_stream
from mailcue_server.app import MailcueServer
from mailcue_server.config import load_settings
from mailcue_server.errors import ConfigError
from mailcue_server.store import retention
from mailcue_server.store.settings import Retention
from mailcue_server.workers.retention import RetentionWorker

PASSWORD = "mailbox-pass-1"


@pytest_asyncio.fixture
async def boss(http: httpx.AsyncClient) -> AsyncIterator[Account]:
    """The admin. After each test the server-wide limits are off and every mailbox is
    gone, so one test's global limit never counts another test's mail."""
    account = await admin(http)
    yield account
    await set_retention(http, account, messages=0, days=0)
    listing = await http.get("/api/v1/mailboxes", headers=account.headers)
    for box in listing.json()["mailboxes"]:
        gone = await http.delete(f"/api/v1/mailboxes/{box['address']}", headers=account.headers)
        assert gone.status_code == 204


def worker(server: MailcueServer, **options: Any) -> RetentionWorker:
    assert server.bus is not None
    return RetentionWorker(server.settings, bus=server.bus, interval=0, **options)


async def inject(
    http: httpx.AsyncClient, boss: Account, address: str, subject: str, date: datetime, **more: Any
) -> int:
    body = {
        "mailbox": address,
        "from_address": "app@example.org",
        "to_addresses": [address],
        "subject": subject,
        "text_body": f"body of {subject}",
        "date": date.isoformat(),
        **more,
    }
    response = await http.post("/api/v1/emails/inject", headers=boss.headers, json=body)
    assert response.status_code == 201, response.text
    return int(response.json()["uid"])


async def subjects(
    http: httpx.AsyncClient, boss: Account, address: str, folder: str = "INBOX"
) -> list[str]:
    response = await http.get(
        "/api/v1/emails",
        headers=boss.headers,
        params={"mailbox": address, "folder": folder, "sort": "date_asc"},
    )
    assert response.status_code == 200, response.text
    return [email["subject"] for email in response.json()["emails"]]


async def email_count(http: httpx.AsyncClient, boss: Account, address: str) -> int:
    response = await http.get("/api/v1/mailboxes", headers=boss.headers)
    [box] = [m for m in response.json()["mailboxes"] if m["address"] == address]
    return int(box["email_count"])


async def status_of(
    http: httpx.AsyncClient, boss: Account, address: str, uid: int, folder: str = "INBOX"
) -> int:
    params = {"mailbox": address, "folder": folder}
    response = await http.get(f"/api/v1/emails/{uid}", headers=boss.headers, params=params)
    return response.status_code


async def deleted_events(feed: Feed, count: int) -> set[tuple[str | None, int | None]]:
    found = set()
    for _ in range(count):
        event = await feed.expect("email.deleted")
        found.add((event.folder, event.uid))
    return found


def minutes_ago(n: int) -> datetime:
    return datetime.now(UTC) - timedelta(minutes=n)


# --- the message limit ---------------------------------------------------------------------------


async def test_global_max_messages_keeps_the_newest_across_folders(
    server: MailcueServer, http: httpx.AsyncClient, boss: Account
) -> None:
    address = await new_mailbox(http, boss, password=PASSWORD)
    oldest = await inject(http, boss, address, "n0 quokka", minutes_ago(50))
    # The second oldest is in Sent: the limit counts the whole mailbox.
    sent = await inject(http, boss, address, "n1", minutes_ago(40), folder="Sent")
    kept = [
        await inject(http, boss, address, f"n{n}", minutes_ago(40 - 10 * n)) for n in (2, 3, 4)
    ]
    await set_retention(http, boss, messages=3, days=0)

    async with sse_stream(server, boss.headers, mailbox=address, types="email.deleted") as feed:
        assert await worker(server).run_once() == 2
        assert await deleted_events(feed, 2) == {("INBOX", oldest), ("Sent", sent)}
        assert feed.pending() == []

    assert await subjects(http, boss, address) == ["n2", "n3", "n4"]
    assert await subjects(http, boss, address, "Sent") == []
    assert await status_of(http, boss, address, oldest) == 404
    assert await status_of(http, boss, address, sent, "Sent") == 404
    assert [await status_of(http, boss, address, uid) for uid in kept] == [200, 200, 200]
    assert await email_count(http, boss, address) == 3
    found = await http.get(
        "/api/v1/emails", headers=boss.headers, params={"mailbox": address, "search": "quokka"}
    )
    assert found.json()["total"] == 0  # gone from the search index too
    assert await worker(server).run_once() == 0  # nothing more to do


async def test_large_purges_go_in_batches_and_miss_nothing(
    server: MailcueServer, http: httpx.AsyncClient, boss: Account
) -> None:
    address = await new_mailbox(http, boss, password=PASSWORD)
    uids = [await inject(http, boss, address, f"b{n}", minutes_ago(60 - n)) for n in range(7)]
    assert server.bus is not None
    limits = Retention(max_messages=2, max_age_days=None)
    removed = await retention.enforce(
        address, limits, bus=server.bus, now=datetime.now(UTC), batch=2
    )
    assert removed == 5
    assert await subjects(http, boss, address) == ["b5", "b6"]
    assert [await status_of(http, boss, address, uid) for uid in uids[:5]] == [404] * 5
    old = [await inject(http, boss, address, f"o{n}", minutes_ago(60 * 24 * 9)) for n in range(5)]
    cutoff = datetime.now(UTC) - timedelta(days=8)
    assert await retention.purge_older_than(address, cutoff, bus=server.bus, batch=2) == 5
    assert [await status_of(http, boss, address, uid) for uid in old] == [404] * 5
    assert await email_count(http, boss, address) == 2


# --- the age limit -------------------------------------------------------------------------------


async def test_max_age_removes_only_mail_received_too_long_ago(
    server: MailcueServer, http: httpx.AsyncClient, boss: Account
) -> None:
    address = await new_mailbox(http, boss, password=PASSWORD)
    now = datetime.now(UTC)
    old = await inject(http, boss, address, "old", now - timedelta(days=31))
    young = await inject(http, boss, address, "young", now - timedelta(days=29))
    # Delivered by SMTP now, though its Date header says 2001: the arrival time counts.
    raw = (
        f"From: a@example.org\r\nTo: {address}\r\nSubject: fresh\r\n"
        "Date: Mon, 01 Jan 2001 00:00:00 +0000\r\n\r\nhello\r\n"
    ).encode()
    await asyncio.to_thread(smtp_deliver, server.port("smtp"), address, raw)
    await set_retention(http, boss, messages=0, days=30)

    async with sse_stream(server, boss.headers, mailbox=address, types="email.deleted") as feed:
        assert await worker(server).run_once() == 1
        assert await deleted_events(feed, 1) == {("INBOX", old)}
    assert await subjects(http, boss, address) == ["young", "fresh"]

    # Two days on, "young" is 31 days old; what SMTP delivered today is not.
    later = worker(server, clock=lambda: now + timedelta(days=2))
    assert await later.run_once() == 1
    assert await status_of(http, boss, address, young) == 404
    assert await subjects(http, boss, address) == ["fresh"]
    # A month on, the SMTP delivery is too old as well.
    assert await worker(server, clock=lambda: now + timedelta(days=31)).run_once() == 1
    assert await subjects(http, boss, address) == []


# --- per-mailbox limits --------------------------------------------------------------------------


async def put_own(
    http: httpx.AsyncClient, boss: Account, address: str, messages: int | None, days: int | None
) -> None:
    response = await http.put(
        f"/api/v1/mailboxes/{address}/retention",
        headers=boss.headers,
        json={"max_messages": messages, "max_age_days": days},
    )
    assert response.status_code == 200, response.text


async def test_a_mailbox_limit_beats_the_global_one_and_zero_turns_it_off(
    server: MailcueServer, http: httpx.AsyncClient, boss: Account
) -> None:
    unlimited, looser, stricter, follows = [await new_mailbox(http, boss) for _ in range(4)]
    await put_own(http, boss, unlimited, 0, 0)
    await put_own(http, boss, looser, 4, 90)
    await put_own(http, boss, stricter, 1, None)
    for address in (unlimited, looser, stricter, follows):
        await inject(http, boss, address, "ancient", datetime.now(UTC) - timedelta(days=60))
        for n in range(4):
            await inject(http, boss, address, f"m{n}", minutes_ago(10 - n))
    await set_retention(http, boss, messages=2, days=30)

    assert await worker(server).run_once() == 1 + 4 + 3
    assert await subjects(http, boss, unlimited) == ["ancient", "m0", "m1", "m2", "m3"]
    assert await subjects(http, boss, looser) == ["m0", "m1", "m2", "m3"]  # 4 of 5
    assert await subjects(http, boss, stricter) == ["m3"]
    assert await subjects(http, boss, follows) == ["m2", "m3"]

    # Back to following the server: the next run applies the global limits.
    await put_own(http, boss, unlimited, None, None)
    assert await worker(server).run_once() == 3
    assert await subjects(http, boss, unlimited) == ["m2", "m3"]


async def test_a_change_of_the_global_limits_applies_at_the_next_run(
    server: MailcueServer, http: httpx.AsyncClient, boss: Account
) -> None:
    address = await new_mailbox(http, boss, password=PASSWORD)
    for n in range(3):
        await inject(http, boss, address, f"c{n}", minutes_ago(10 - n))
    running = worker(server)
    assert await running.run_once() == 0  # no limits yet
    await set_retention(http, boss, messages=1, days=0)
    assert await running.run_once() == 2
    assert await subjects(http, boss, address) == ["c2"]


# --- what IMAP clients see -----------------------------------------------------------------------


async def test_an_imap_client_sees_the_expunge(
    server: MailcueServer, http: httpx.AsyncClient, boss: Account
) -> None:
    address = await new_mailbox(http, boss, password=PASSWORD)
    uids = [await inject(http, boss, address, f"i{n}", minutes_ago(10 - n)) for n in range(3)]
    imap = await Imap.login(server.port("imap"), address, PASSWORD)
    try:
        assert await imap.run(lambda c: c.select("INBOX")) == [b"3"]
        await set_retention(http, boss, messages=1, days=0)
        assert await worker(server).run_once() == 2
        await imap.run(lambda c: c.noop())
        expunged = imap.client.untagged_responses.pop("EXPUNGE", [])
        assert len(expunged) == 2
        left = await imap.run(lambda c: c.uid("SEARCH", "ALL"))
        assert left == [str(uids[2]).encode()]
        status = await imap.run(lambda c: c.status("INBOX", "(MESSAGES)"))
        assert b"MESSAGES 1" in status[0]
    finally:
        await imap.logout()


# --- the worker itself ---------------------------------------------------------------------------


def test_interval_setting_defaults_to_five_minutes_and_zero_is_off(tmp_path: Any) -> None:
    settings = load_settings(data_dir=tmp_path, _env_file=None)
    assert settings.retention_interval == 300
    assert load_settings(retention_interval="0", _env_file=None).retention_interval == 0
    with pytest.raises(ConfigError, match="MAILCUE_RETENTION_INTERVAL"):
        load_settings(retention_interval="-1", _env_file=None)


async def test_the_worker_runs_on_its_own_and_zero_turns_it_off(
    server: MailcueServer, http: httpx.AsyncClient, boss: Account
) -> None:
    off = worker(server)
    off.start()
    assert not off.running
    address = await new_mailbox(http, boss, password=PASSWORD)
    first = await inject(http, boss, address, "first", minutes_ago(5))
    await inject(http, boss, address, "second", minutes_ago(1))
    await set_retention(http, boss, messages=1, days=0)
    assert server.bus is not None
    running = RetentionWorker(server.settings, bus=server.bus, interval=0.05)
    async with sse_stream(server, boss.headers, mailbox=address, types="email.deleted") as feed:
        running.start()
        try:
            assert await deleted_events(feed, 1) == {("INBOX", first)}
        finally:
            await running.stop()
    assert not running.running
    assert await subjects(http, boss, address) == ["second"]


def smtp_deliver(port: int, to: str, raw: bytes) -> None:
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
        client.sendmail("sender@example.org", [to], raw)
