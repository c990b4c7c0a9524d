"""Shared fixtures: one real MailCue server on loopback (port 0) for the whole run."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio

from mailcue_server.app import MailcueServer
from mailcue_server.config import load_settings
from mailcue_server.events.memory import MemoryBus
from mailcue_server.store.db import Database

ADMIN_USER = "admin"
ADMIN_PASSWORD = "admin-test-password"


def node_settings(data_dir: Path, **overrides: Any) -> Any:
    """Settings for a server that binds only free loopback ports and keeps data in a tmp dir."""
    values: dict[str, Any] = {
        "data_dir": data_dir,
        "bind": "127.0.0.1",
        "http_port": 0,
        "smtp_port": 0,
        "submission_port": 0,
        "smtps_port": 0,
        "imap_port": 0,
        "imaps_port": 0,
        "pop3_port": 0,
        "pop3s_port": 0,
        "admin_user": ADMIN_USER,
        "admin_password": ADMIN_PASSWORD,
        "secret_key": "",
        "database_url": "",
        "redis_url": "",
        # No DNS for SPF/DKIM/DMARC of test mail: tests that check it turn it on.
        "inbound_auth": False,
        "_env_file": None,
    }
    values.update(overrides)
    return load_settings(**values)


@pytest_asyncio.fixture(scope="module")
async def server(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[MailcueServer]:
    """A MailCue node on SQLite, shared by the tests of one module.

    Module scope, not session: Tortoise's model classes are process-wide, so a
    module that opens PostgreSQL must not run while a SQLite node is up (see
    ``store.db.connection_name``). Modules that use PostgreSQL don't use this.
    """
    node = MailcueServer(node_settings(tmp_path_factory.mktemp("mailcue")))
    await node.start()
    yield node
    await node.stop()


@pytest_asyncio.fixture
async def http(server: MailcueServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server.http_url, timeout=10) as client:
        yield client


@pytest_asyncio.fixture
async def queue_db(tmp_path: Path) -> AsyncIterator[Database]:
    """A fresh SQLite database through the real migrations (for a worker run on its own).

    Not called ``db``: a conftest fixture would hide the parametrised ``db`` plugin
    fixture of tests/store/mail_db.py (SQLite and PostgreSQL).
    """
    database = Database(f"sqlite://{tmp_path / 'queue.db'}?journal_mode=WAL")
    await database.open()
    try:
        await database.migrate()
        yield database
    finally:
        await database.close()


@pytest_asyncio.fixture
async def bus() -> AsyncIterator[MemoryBus]:
    events = MemoryBus()
    yield events
    await events.close()
