"""Retention on PostgreSQL: the same limits, and two nodes' workers racing announce each
removal once.

Its own module: it opens PostgreSQL, so it must not run beside the SQLite
``server`` fixture (Tortoise models are process-wide, see ``store/db.py``).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from accounts import admin
from conftest import node_settings
from mailcue_server.app import MailcueServer
from mailcue_server.events.bus import EventType, channel_for
from mailcue_server.workers.retention import RetentionWorker
from services import fresh_postgres_database

MESSAGES = 30
OLD = 5
"""The first messages are 40 days old: the age limit takes them, the count limit the rest."""


def _email(address: str, n: int, now: datetime) -> dict[str, Any]:
    received = now - timedelta(days=40 if n < OLD else 0, minutes=MESSAGES - n)
    return {
        "mailbox": address,
        "from_address": "a@example.org",
        "to_addresses": [address],
        "subject": f"p{n}",
        "date": received.isoformat(),
    }


async def test_limits_on_postgresql_and_racing_workers(tmp_path: Path) -> None:
    async with fresh_postgres_database() as url:
        node = MailcueServer(node_settings(tmp_path, database_url=url))
        await node.start()
        try:
            assert node.bus is not None
            async with httpx.AsyncClient(base_url=node.http_url, timeout=30) as http:
                boss = await admin(http)
                made = await http.post(
                    "/api/v1/mailboxes",
                    headers=boss.headers,
                    json={"username": "pgkeep", "password": "mailbox-pass-1",
                          "domain": "example.test"},
                )  # fmt: skip
                assert made.status_code == 201, made.text
                address = made.json()["address"]
                now = datetime.now(UTC)
                emails = [_email(address, n, now) for n in range(MESSAGES)]
                bulk = await http.post(
                    "/api/v1/emails/bulk-inject", headers=boss.headers, json={"emails": emails}
                )
                assert bulk.status_code == 201, bulk.text
                assert bulk.json()["injected"] == MESSAGES
                saved = await http.put(
                    "/api/v1/system/settings",
                    headers=boss.headers,
                    json={"retention_max_messages": 10, "retention_max_age_days": 30},
                )
                assert saved.status_code == 200

                racers = [RetentionWorker(node.settings, bus=node.bus, interval=0) for _ in "ab"]
                async with node.bus.subscribe([channel_for(address)]) as events:
                    removed = await asyncio.gather(*(w.run_once() for w in racers))
                    assert sum(removed) == MESSAGES - 10
                    seen: Counter[int] = Counter()
                    async with asyncio.timeout(10):
                        async for event in events:
                            assert event.type is EventType.EMAIL_DELETED
                            seen[event.uid or 0] += 1
                            if len(seen) == MESSAGES - 10:
                                break
                assert set(seen.values()) == {1}  # announced once each

                listing = await http.get(
                    "/api/v1/emails",
                    headers=boss.headers,
                    params={"mailbox": address, "sort": "date_asc", "page_size": 50},
                )
                subjects = [e["subject"] for e in listing.json()["emails"]]
                assert subjects == [f"p{n}" for n in range(MESSAGES - 10, MESSAGES)]
                assert listing.json()["total"] == 10
        finally:
            await node.stop()


async def test_a_mailbox_another_node_is_trimming_is_left_to_it(tmp_path: Path) -> None:
    """Another node holds the mailbox's retention lock: this one removes nothing, then,
    once the lock is free, trims to the limit exactly."""
    import asyncpg

    from mailcue_server.store.locks import _advisory_key
    from mailcue_server.store.retention import enforce
    from mailcue_server.store.settings import Retention

    async with fresh_postgres_database() as url:
        node = MailcueServer(node_settings(tmp_path, database_url=url))
        await node.start()
        try:
            assert node.bus is not None
            async with httpx.AsyncClient(base_url=node.http_url, timeout=30) as http:
                boss = await admin(http)
                made = await http.post(
                    "/api/v1/mailboxes",
                    headers=boss.headers,
                    json={"username": "pglock", "password": "mailbox-pass-1",
                          "domain": "example.test"},
                )  # fmt: skip
                address = made.json()["address"]
                now = datetime.now(UTC)
                emails = [_email(address, n, now) for n in range(OLD, MESSAGES)]
                bulk = await http.post(
                    "/api/v1/emails/bulk-inject", headers=boss.headers, json={"emails": emails}
                )
                assert bulk.status_code == 201, bulk.text
            limits = Retention(max_messages=10, max_age_days=None)
            other_node = await asyncpg.connect(url.replace("postgres://", "postgresql://", 1))
            try:
                key = _advisory_key(f"retention:{address}")
                assert await other_node.fetchval("SELECT pg_try_advisory_lock($1)", key)
                assert await enforce(address, limits, bus=node.bus, now=now) == 0
                await other_node.execute("SELECT pg_advisory_unlock($1)", key)
            finally:
                await other_node.close()
            assert await enforce(address, limits, bus=node.bus, now=now) == MESSAGES - OLD - 10
        finally:
            await node.stop()
