"""Fixtures of the IMAP tests: a real store, a memory bus, TLS, and servers on port 0.

Loaded as a plugin by ``test_imap.py`` and ``test_imap_transcripts.py``
(``pytest_plugins``). The ``db`` fixture (``tests/store/mail_db.py``) gives a
migrated SQLite or PostgreSQL database; tests that need only one engine say
so with :data:`sqlite_only`.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from mailcue_server.events.memory import MemoryBus
from mailcue_server.store import ingest, mailboxes
from mailcue_server.store.credentials import hash_password_sync
from mailcue_server.store.db import Database
from mailcue_server.store.mail_models import Mailbox
from mailcue_server.workers.imap import ImapServer
from mailcue_server.workers.tls import TlsManager

DATA = Path(__file__).resolve().parent.parent / "data" / "imap"
NAMES = (
    "multipart-attachment.eml",
    "non-ascii-headers.eml",
    "nested-alternative.eml",
    "rfc822-attachment.eml",
)
FIXTURES = {name: (DATA / name).read_bytes() for name in NAMES}
USER = "alice@example.test"
PASSWORD = "correct horse battery"
TIMEOUT = 10.0

sqlite_only = pytest.mark.parametrize("db", ["sqlite"], indirect=True)
"""Run a test on SQLite only (the logic under test does not depend on the engine)."""


@dataclass
class Rig:
    """A mailbox with a password, a bus, TLS material, and the servers a test started."""

    bus: MemoryBus
    tls: TlsManager
    servers: list[ImapServer] = field(default_factory=list)

    async def serve(self, **options: Any) -> int:
        """Start an IMAP server on 127.0.0.1 port 0 and return its port."""
        options.setdefault("allow_plaintext_auth", True)
        options.setdefault("tls_context", self.tls.server_context())
        server = ImapServer(bus=self.bus, host="127.0.0.1", port=0, **options)
        self.servers.append(server)
        return await server.start()

    def client_context(self) -> ssl.SSLContext:
        return self.tls.client_context()

    async def deliver(self, *raws: bytes) -> list[int]:
        """Deliver messages to the INBOX as SMTP would (one group commit); returns their UIDs."""
        batch = [ingest.Incoming(raw=raw, recipients=(USER,)) for raw in raws]
        results = await ingest.ingest_many(batch, bus=self.bus)
        return [result.stored[0].uid for result in results]


@pytest.fixture(scope="session")
def password_hash() -> str:
    """One Argon2 hash for every rig: hashing costs a large share of a test's setup."""
    return hash_password_sync(PASSWORD)


@pytest.fixture(scope="module")
def tls_manager(tmp_path_factory: pytest.TempPathFactory) -> TlsManager:
    manager = TlsManager(tmp_path_factory.mktemp("tls"), "localhost")
    manager.load()
    return manager


@pytest_asyncio.fixture
async def rig(db: Database, tls_manager: TlsManager, password_hash: str) -> AsyncIterator[Rig]:
    bus = MemoryBus()
    mailbox = await mailboxes.create_mailbox(USER, bus=bus)
    await Mailbox.filter(id=mailbox.id).update(password_hash=password_hash)
    test_rig = Rig(bus, tls_manager)
    yield test_rig
    for server in test_rig.servers:
        await server.close()
    await bus.close()


class Wire:
    """A raw IMAP client: send lines, read responses with their literals inlined."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self._tag = 0

    @classmethod
    async def open(cls, port: int) -> Wire:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        wire = cls(reader, writer)
        await wire.line()  # greeting
        return wire

    async def line(self) -> bytes:
        """One response line; a literal it announces is read into it."""
        async with asyncio.timeout(TIMEOUT):
            data = await self.reader.readline()
            while (match := re.search(rb"\{(\d+)\}\r\n\Z", data)) is not None:
                data += await self.reader.readexactly(int(match.group(1)))
                data += await self.reader.readline()
        if not data:
            raise EOFError("server closed the connection")
        return data

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def command(self, text: bytes) -> list[bytes]:
        """Send a tagged command; return every line up to and including the tagged reply."""
        self._tag += 1
        tag = b"t%d" % self._tag
        await self.send(tag + b" " + text + b"\r\n")
        return await self.until(tag)

    async def until(self, tag: bytes) -> list[bytes]:
        lines = []
        while True:
            lines.append(await self.line())
            if lines[-1].startswith(tag + b" "):
                return lines

    async def login(self) -> None:
        reply = await self.command(b'LOGIN "%s" "%s"' % (USER.encode(), PASSWORD.encode()))
        assert reply[-1].split()[1] == b"OK", reply

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(OSError):
            await self.writer.wait_closed()
