"""Hostile mailbox names and LIST patterns against a whole node: BAD, and nobody else waits.

pymap's own decoder looped forever on ``a SELECT &A`` and its LIST matcher
backtracked for seconds, both on the event loop, so HTTP, SMTP and POP3
froze with IMAP. Each hostile line here must get its answer at once and
leave the other listeners answering within a second.
"""

from __future__ import annotations

import asyncio
import smtplib
import time

import httpx
import pytest

from accounts import PASSWORD, admin, new_mailbox
from mailcue_server.app import MailcueServer

ANSWER_WITHIN = 1.0


class Imap:
    """A raw IMAP connection: one tagged command at a time, every line it got back."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer, self.count = reader, writer, 0

    @classmethod
    async def open(cls, port: int) -> Imap:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        await reader.readline()  # greeting
        return cls(reader, writer)

    async def send(self, command: bytes) -> list[bytes]:
        self.count += 1
        tag = b"h%d" % self.count
        self.writer.write(tag + b" " + command + b"\r\n")
        await self.writer.drain()
        lines = []
        async with asyncio.timeout(10):
            while not (lines and lines[-1].startswith(tag + b" ")):
                lines.append(await self.reader.readline())
                assert lines[-1], f"connection closed after {command!r}: {lines}"
        return [line.removeprefix(tag + b" ") for line in lines]

    async def close(self) -> None:
        self.writer.close()


async def others_answer(server: MailcueServer) -> None:
    """HTTP health and the SMTP banner, each within a second."""
    started = time.monotonic()
    async with httpx.AsyncClient(base_url=server.http_url, timeout=ANSWER_WITHIN) as http:
        assert (await http.get("/api/v1/health")).status_code == 200

    def banner() -> int:
        with smtplib.SMTP("127.0.0.1", server.port("smtp"), timeout=ANSWER_WITHIN) as smtp:
            return smtp.noop()[0]

    assert await asyncio.to_thread(banner) == 250
    assert time.monotonic() - started < 2 * ANSWER_WITHIN


@pytest.fixture
async def logged_in(server: MailcueServer, http: httpx.AsyncClient) -> Imap:
    address = await new_mailbox(http, await admin(http))
    imap = await Imap.open(server.port("imap"))
    assert (await imap.send(b'LOGIN "%s" "%s"' % (address.encode(), PASSWORD.encode())))[-1][
        :2
    ] == b"OK"
    return imap


async def test_an_unterminated_shift_before_login_is_bad_and_freezes_nothing(
    server: MailcueServer,
) -> None:
    imap = await Imap.open(server.port("imap"))

    reply = await imap.send(b"SELECT &A")

    assert reply == [b"BAD SELECT: Invalid arguments.\r\n"]
    await others_answer(server)
    await imap.close()


@pytest.mark.parametrize(
    "command",
    [
        b"SELECT &A",
        b'SELECT "&Jjo"',
        b"CREATE a&b",
        b'SELECT "!#$$&\'+,-"',
        b"EXAMINE &AGE-",
        b'RENAME INBOX "&2D0-"',
        b'LIST "&A" "*"',
        b'LIST "" "' + b"a" * 2000 + b'"',
    ],
)
async def test_malformed_names_after_login_are_bad_and_the_session_goes_on(
    server: MailcueServer, logged_in: Imap, command: bytes
) -> None:
    reply = await logged_in.send(command)

    assert reply[-1].startswith(b"BAD "), reply
    assert (await logged_in.send(b"NOOP"))[-1] == b"OK NOOP completed.\r\n"
    await others_answer(server)
    await logged_in.close()


async def test_a_backtracking_list_pattern_answers_at_once(
    server: MailcueServer, logged_in: Imap
) -> None:
    for name in (b"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", b"Entw&APw-rfe"):
        assert (await logged_in.send(b'CREATE "%s"' % name))[-1].startswith(b"OK"), name
    hostile = b"*%" * 30 + b"y"

    started = time.monotonic()
    reply = await logged_in.send(b'LIST "" "%s"' % hostile)

    assert time.monotonic() - started < ANSWER_WITHIN
    assert reply == [b"OK LIST completed.\r\n"]
    await others_answer(server)
    # Valid names and patterns still work, encoded names included.
    listed = await logged_in.send(b'LIST "" "Entw*"')
    assert listed == [b'* LIST (\\HasNoChildren) "/" Entw&APw-rfe\r\n', b"OK LIST completed.\r\n"]
    await logged_in.close()
