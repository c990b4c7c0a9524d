"""Deeply nested SEARCH criteria and an over-long line in IDLE: BAD, and the session goes on.

pymap parses and evaluates SEARCH keys recursively: a few hundred levels of
parentheses, ``OR`` or ``NOT`` hit Python's recursion limit, which ended the
connection with ``BYE [SERVERBUG]`` (or answered ``NO [SERVERBUG]`` when only
the evaluation went that deep). A line over the length limit where IDLE
expects ``DONE`` ended it the same way.
"""

from __future__ import annotations

import httpx
import pytest
from test_imap_hostile import Imap, others_answer

from accounts import PASSWORD, admin, new_mailbox
from mailcue_server.app import MailcueServer

TOO_DEEP = b"BAD Nested more than 100 levels deep.\r\n"


@pytest.fixture
async def selected(server: MailcueServer, http: httpx.AsyncClient) -> Imap:
    """A session with INBOX selected, holding three messages (a search evaluates them)."""
    address = await new_mailbox(http, await admin(http))
    imap = await Imap.open(server.port("imap"))
    login = await imap.send(b'LOGIN "%s" "%s"' % (address.encode(), PASSWORD.encode()))
    assert login[-1].startswith(b"OK")
    for n in range(3):
        raw = b"From: a@client.test\r\nSubject: x%d\r\n\r\nbody\r\n" % n
        assert (await imap.send(b"APPEND INBOX {%d+}\r\n%s" % (len(raw), raw)))[-1][:2] == b"OK"
    assert (await imap.send(b"SELECT INBOX"))[-1].startswith(b"OK")
    return imap


@pytest.mark.parametrize(
    "command",
    [
        b"SEARCH " + b"(" * 2000 + b"ALL" + b")" * 2000,
        b"UID SEARCH " + b"OR ALL " * 3000 + b"ALL",
        b"SEARCH " + b"OR SUBJECT x " * 400 + b"ALL",  # parsed fine; evaluating recursed too deep
        b"SEARCH " + b"NOT " * 101 + b"ALL",
        b"SEARCH " + b"(OR ALL " * 51 + b"ALL" + b")" * 51,
    ],
    ids=["parentheses", "or", "or-evaluated", "not", "mixed"],
)
async def test_deeply_nested_search_is_bad_and_the_session_goes_on(
    server: MailcueServer, selected: Imap, command: bytes
) -> None:
    reply = await selected.send(command)

    assert reply == [TOO_DEEP]
    assert (await selected.send(b"NOOP"))[-1] == b"OK NOOP completed.\r\n"
    await others_answer(server)
    await selected.close()


async def test_search_nested_100_deep_still_runs(selected: Imap) -> None:
    or_chain = b"SEARCH " + b"OR SUBJECT x0 " * 99 + b"SUBJECT x1"
    quoted = b'SEARCH SUBJECT "' + b"(OR NOT " * 200 + b'"'  # text in quotes nests nothing

    assert await selected.send(or_chain) == [b"* SEARCH 1 2\r\n", b"OK SEARCH completed.\r\n"]
    assert await selected.send(quoted) == [b"* SEARCH\r\n", b"OK SEARCH completed.\r\n"]
    await selected.close()


async def test_an_over_long_line_in_idle_is_bad_and_the_session_goes_on(
    server: MailcueServer, selected: Imap
) -> None:
    selected.writer.write(b"i1 IDLE\r\n")
    assert await selected.reader.readline() == b"+ Idling.\r\n"

    selected.writer.write(b"x" * 200_000 + b"\r\n")
    await selected.writer.drain()

    assert await selected.reader.readline() == b'i1 BAD Expected "DONE".\r\n'
    assert (await selected.send(b"NOOP"))[-1] == b"OK NOOP completed.\r\n"
    await others_answer(server)
    await selected.close()
