"""Two delivery workers sharing one PostgreSQL queue never deliver the same message twice.

Its own module: it opens PostgreSQL, so it must not run beside the SQLite
``server`` fixture (Tortoise models are process-wide, see ``store/db.py``).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

from conftest import node_settings
from dns_server import dns_server
from mailcue_server.events.memory import MemoryBus
from mailcue_server.store import outbound, outbound_admin
from mailcue_server.store.db import Database
from mailcue_server.workers.outbound import OutboundWorker
from outbound_rig import Remote, remote_smtp
from services import fresh_postgres_database

MESSAGES = 40


async def test_two_workers_on_one_postgres_queue_deliver_each_message_once(
    tmp_path: Path,
) -> None:
    async with (
        fresh_postgres_database() as url,
        dns_server(mx=[("ok.test", "mx.ok.test", 10)], hosts={"mx.ok.test": ["127.0.0.1"]}) as dns,
        remote_smtp(Remote(data_delay=0.02)) as remote,
    ):
        database = Database(url)
        await database.open()
        bus = MemoryBus()
        try:
            await database.migrate()
            ids = [
                await outbound.enqueue(
                    f"Subject: {n}\r\nMessage-ID: <m{n}@local.test>\r\n\r\nbody {n}\r\n".encode(),
                    "sender@local.test",
                    [f"user{n}@ok.test"],
                    now=datetime.now(UTC),
                )
                for n in range(MESSAGES)
            ]
            workers = [
                OutboundWorker(
                    node_settings(
                        tmp_path / name,
                        database_url=url,
                        dns_resolver=dns,
                        hostname=f"{name}.local.test",
                        outbound_smtp_port=remote.port,
                        outbound_concurrency=4,
                        outbound_poll_interval=0.05,
                    ),
                    bus=bus,
                )
                for name in ("node-a", "node-b")
            ]
            for worker in workers:
                worker.start()
            try:
                await _all_delivered(ids)
            finally:
                for worker in workers:
                    await worker.stop()
        finally:
            await bus.close()
            await database.close()

    recipients = Counter(rcpt for d in remote.received for rcpt in d.rcpt_tos)
    assert sorted(recipients) == sorted(f"user{n}@ok.test" for n in range(MESSAGES))
    assert set(recipients.values()) == {1}, "a message was delivered twice"
    helos = Counter(delivery.helo for delivery in remote.received)
    assert set(helos) == {"node-a.local.test", "node-b.local.test"}, helos  # both took part


async def _all_delivered(ids: list[int], timeout: float = 30.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        total, _ = await outbound_admin.list_entries(state="delivered")
        if total == len(ids):
            return
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"only {total} of {len(ids)} delivered in time")
        await asyncio.sleep(0.05)
