"""IMAP byte transcripts for what Dovecot's imaptest found (issue 12, section 2).

Each test talks raw IMAP to a real ``ImapServer`` over the real store on
SQLite (``imap_rig.Wire``) and checks the exact lines RFC 3501 asks for:
FLAGS and PERMANENTFLAGS (7.1, 7.2.6), keywords announced before they are
used, EXPUNGE held back during FETCH/STORE/SEARCH (7.4.1), malformed
mailbox names, subscriptions (6.3.6, 6.3.9), COPY/MOVE into the selected
folder, header lists echoed as asked (6.4.5), sequence numbers past EXISTS,
capabilities after login, and ``\\Recent`` for one session only (2.3.2).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

from mailcue_server.store import messages
from mailcue_server.store.messages import FlagMode

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "store"))  # mail_db
pytest_plugins = ["mail_db", "imap_rig"]
pytest.register_assert_rewrite("imap_rig")

from imap_rig import FIXTURES, NAMES, USER, Rig, Wire, sqlite_only  # noqa: E402

pytestmark = sqlite_only

RAW = [FIXTURES[name] for name in NAMES]
SYSTEM = b"\\Answered \\Flagged \\Deleted \\Seen \\Draft"


async def opened(rig: Rig, *, deliver: bool = True) -> tuple[int, Wire]:
    """A server with the four fixtures in the INBOX, and a logged-in client."""
    if deliver:
        await rig.deliver(*RAW)
    port = await rig.serve()
    wire = await Wire.open(port)
    await wire.login()
    return port, wire


async def test_select_and_examine_send_flags_without_the_wildcard(rig: Rig) -> None:
    await rig.deliver(*RAW)
    await messages.set_flags(USER, "INBOX", [3], ["$Work"], bus=rig.bus, mode=FlagMode.ADD)
    _, wire = await opened(rig, deliver=False)

    selected = await wire.command(b"SELECT INBOX")
    examined = await wire.command(b"EXAMINE INBOX")

    # \* only in PERMANENTFLAGS (RFC 3501 section 7.2.6); keywords in use in both.
    assert b"* FLAGS (%b $Work)\r\n" % SYSTEM in selected
    assert b"* OK [PERMANENTFLAGS (%b $Work \\*)] Flags permitted.\r\n" % SYSTEM in selected
    assert selected[-1] == b"t2 OK [READ-WRITE] Selected mailbox.\r\n"
    assert b"* FLAGS (%b $Work)\r\n" % SYSTEM in examined
    assert b"* OK [PERMANENTFLAGS ()] Read-only mailbox.\r\n" in examined
    # OBJECTID (RFC 8474) is not advertised, so no MAILBOXID code either.
    assert not [line for line in selected + examined if b"MAILBOXID" in line]
    await wire.close()


async def test_a_new_keyword_is_announced_before_it_is_used(rig: Rig) -> None:
    port, first = await opened(rig)
    await first.command(b"SELECT INBOX")
    second = await Wire.open(port)
    await second.login()
    await second.command(b"SELECT INBOX")

    stored = await first.command(b"STORE 1 +FLAGS (Todo)")

    assert stored == [
        b"* FLAGS (%b Todo)\r\n" % SYSTEM,
        b"* OK [PERMANENTFLAGS (%b Todo \\*)] Flags permitted.\r\n" % SYSTEM,
        b"* 1 FETCH (FLAGS (\\Recent Todo))\r\n",
        b"t3 OK STORE completed.\r\n",
    ]
    assert await second.command(b"NOOP") == [
        b"* FLAGS (%b Todo)\r\n" % SYSTEM,
        b"* OK [PERMANENTFLAGS (%b Todo \\*)] Flags permitted.\r\n" % SYSTEM,
        b"* 1 FETCH (FLAGS (Todo))\r\n",
        b"t3 OK NOOP completed.\r\n",
    ]
    # A keyword the session already knows is not announced again.
    assert await first.command(b"STORE 2 +FLAGS (Todo)") == [
        b"* 2 FETCH (FLAGS (\\Recent Todo))\r\n",
        b"t4 OK STORE completed.\r\n",
    ]
    # A session that selects later finds it in FLAGS at once.
    reply = await second.command(b"EXAMINE INBOX")
    assert b"* FLAGS (%b Todo)\r\n" % SYSTEM in reply
    await first.close()
    await second.close()


async def test_an_expunge_noticed_during_fetch_store_search_waits_for_noop(rig: Rig) -> None:
    _, wire = await opened(rig)
    await wire.command(b"SELECT INBOX")
    await messages.delete(USER, "INBOX", [2], bus=rig.bus)  # another session's expunge

    # RFC 3501 section 7.4.1: no EXPUNGE during FETCH, STORE or SEARCH.
    flags = await wire.command(b"FETCH 1:4 (FLAGS)")
    assert [line.split(b" FETCH")[0] for line in flags[:-1]] == [b"* 1", b"* 2", b"* 3", b"* 4"]
    assert flags[-1] == b"t3 OK FETCH completed.\r\n"
    stored = await wire.command(b"STORE 3 +FLAGS.SILENT (\\Flagged)")
    assert stored == [b"t4 OK STORE completed.\r\n"]
    assert (await wire.command(b"SEARCH ALL"))[0] == b"* SEARCH 1 2 3 4\r\n"

    # The vanished message's bytes are gone: NO, never OK with an empty body.
    body = await wire.command(b"FETCH 2 (BODY.PEEK[])")
    assert body == [b"t6 NO [EXPUNGEISSUED] Some of the requested messages no longer exist.\r\n"]
    both = await wire.command(b"FETCH 1:2 (BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
    assert both[0].startswith(b"* 1 FETCH (BODY[HEADER.FIELDS (SUBJECT)] {")
    assert both[1:] == [
        b"t7 NO [EXPUNGEISSUED] Some of the requested messages no longer exist.\r\n"
    ]

    # The next command that may report it does.
    assert await wire.command(b"NOOP") == [
        b"* 2 EXPUNGE\r\n",
        b"* 3 RECENT\r\n",
        b"t8 OK NOOP completed.\r\n",
    ]
    assert await wire.command(b"NOOP") == [b"t9 OK NOOP completed.\r\n"]
    assert await wire.command(b"FETCH 1:* (UID)") == [
        b"* 1 FETCH (UID 1)\r\n",
        b"* 2 FETCH (UID 3)\r\n",
        b"* 3 FETCH (UID 4)\r\n",
        b"t10 OK FETCH completed.\r\n",
    ]
    await wire.close()


MALFORMED = [
    b"SELECT !#$$&'+,-",
    b"EXAMINE &A",
    b"CREATE a&b",
    b"DELETE &A",
    b"RENAME INBOX &Jjo",
    b"RENAME &A Other",
    b"SUBSCRIBE &AGE-",
    b"UNSUBSCRIBE &A",
    b"STATUS &A (MESSAGES)",
    b"APPEND &A {4+}\r\nab\r\n",
    b'LIST "" &A',
    b'LSUB "&2D0-" "*"',
    b"COPY 1 &A",
    b"MOVE 1 &A",
    b"UID COPY 1 &A",
    b"UID MOVE 1 &A",
]


async def test_malformed_mailbox_names_get_bad_on_every_command(rig: Rig) -> None:
    _, wire = await opened(rig)
    await wire.command(b"SELECT INBOX")
    for command in MALFORMED:
        reply = await wire.command(command)
        assert len(reply) == 1 and re.match(rb"t\d+ BAD ", reply[0]), (command, reply)
        assert (await wire.command(b"NOOP"))[-1].endswith(b" OK NOOP completed.\r\n"), command
    await wire.close()


def lsub_names(reply: list[bytes]) -> list[bytes]:
    return [line.rsplit(b'"/" ', 1)[1].rstrip() for line in reply if line.startswith(b"* LSUB")]


async def test_create_does_not_subscribe_and_delete_keeps_the_subscription(rig: Rig) -> None:
    _, wire = await opened(rig, deliver=False)
    created = await wire.command(b"CREATE Work")
    assert created == [b"t2 OK CREATE completed.\r\n"]  # and no MAILBOXID code
    await wire.command(b"CREATE Other")
    assert b"Work" not in lsub_names(await wire.command(b'LSUB "" "*"'))

    assert (await wire.command(b"SUBSCRIBE Work"))[-1] == b"t5 OK SUBSCRIBE completed.\r\n"
    assert b"Work" in lsub_names(await wire.command(b'LSUB "" "*"'))
    # RFC 3501 section 6.3.9: a deleted mailbox stays subscribed until UNSUBSCRIBE.
    await wire.command(b"DELETE Work")
    await wire.command(b"DELETE Other")
    names = lsub_names(await wire.command(b'LSUB "" "*"'))
    assert b"Work" in names and b"Other" not in names
    listed = await wire.command(b'LIST "" "*"')
    assert not [line for line in listed if line.endswith(b" Work\r\n")]
    # Made again, it is still subscribed; unsubscribed, it is gone from LSUB.
    await wire.command(b"CREATE Work")
    assert b"Work" in lsub_names(await wire.command(b'LSUB "" "*"'))
    await wire.command(b"DELETE Work")
    assert (await wire.command(b"UNSUBSCRIBE Work"))[-1].endswith(b"OK UNSUBSCRIBE completed.\r\n")
    assert b"Work" not in lsub_names(await wire.command(b'LSUB "" "*"'))
    await wire.close()


async def test_copy_and_move_into_the_selected_mailbox(rig: Rig) -> None:
    _, wire = await opened(rig)
    selected = await wire.command(b"SELECT INBOX")
    validity = re.search(rb"UIDVALIDITY (\d+)", b"".join(selected))
    assert validity is not None
    await wire.command(b"STORE 1 +FLAGS (\\Flagged Todo)")

    copied = await wire.command(b"COPY 1 INBOX")

    assert b"* 5 EXISTS\r\n" in copied
    assert copied[-1] == b"t4 OK [COPYUID %b 1 5] COPY completed.\r\n" % validity.group(1)
    moved = await wire.command(b"MOVE 2 INBOX")
    assert moved[0] == b"* OK [COPYUID %b 2 6] Moved.\r\n" % validity.group(1)
    assert b"* 2 EXPUNGE\r\n" in moved and b"* 5 EXISTS\r\n" in moved
    assert moved[-1] == b"t5 OK MOVE completed.\r\n"
    copy = await wire.command(b"UID FETCH 5 (FLAGS BODY.PEEK[])")
    flags = b"FLAGS (\\Flagged \\Recent Todo)"
    assert copy[0] == b"* 4 FETCH (%b BODY[] {%d}\r\n%b UID 5)\r\n" % (flags, len(RAW[0]), RAW[0])
    moved_body = await wire.command(b"UID FETCH 6 (BODY.PEEK[])")
    assert moved_body[0].startswith(b"* 5 FETCH (BODY[] {%d}\r\n%b" % (len(RAW[1]), RAW[1]))
    await wire.close()


async def test_a_header_list_is_echoed_as_asked(rig: Rig) -> None:
    _, wire = await opened(rig)
    await wire.command(b"SELECT INBOX")
    sender = b"From: Reports <reports@example.test>\r\n\r\n"

    reply = await wire.command(b"FETCH 1 (BODY.PEEK[HEADER.FIELDS (from from)])")
    assert reply[0] == b"* 1 FETCH (BODY[HEADER.FIELDS (from from)] {%d}\r\n%b)\r\n" % (
        len(sender),
        sender,
    )
    reply = await wire.command(b"FETCH 1 (BODY.PEEK[HEADER.FIELDS.NOT (Subject x-Y)]<0.6>)")
    assert reply[0].startswith(b"* 1 FETCH (BODY[HEADER.FIELDS.NOT (Subject x-Y)]<0> {6}\r\n")
    reply = await wire.command(b"UID FETCH 4 (BODY.PEEK[2.HEADER.FIELDS (To to TO)])")
    assert reply[0].startswith(b"* 4 FETCH (BODY[2.HEADER.FIELDS (To to TO)] {")
    await wire.close()


async def test_sequence_numbers_beyond_exists_are_bad(rig: Rig) -> None:
    _, wire = await opened(rig)
    await wire.command(b"SELECT INBOX")
    for command in (
        b"FETCH 5 (FLAGS)",
        b"FETCH 2:9 (UID)",
        b"STORE 1,5 +FLAGS (\\Seen)",
        b"COPY 5 INBOX",
        b"MOVE 3:5 INBOX",
    ):
        reply = await wire.command(command)
        assert len(reply) == 1 and re.match(rb"t\d+ BAD ", reply[0]), (command, reply)
        await wire.command(b"NOOP")  # five BADs in a row end the connection
    # Within EXISTS, "*", and UIDs (which may name messages that are gone) stay OK.
    assert (await wire.command(b"FETCH 4:* (UID)"))[0] == b"* 4 FETCH (UID 4)\r\n"
    assert await wire.command(b"UID FETCH 99 (UID)") == [b"t14 OK UID FETCH completed.\r\n"]
    reply = await wire.command(b"FETCH 1:4 (FLAGS)")
    assert all(b"\\Seen" not in line for line in reply)  # the refused STORE changed nothing
    await wire.close()


async def test_starttls_is_not_listed_after_login(rig: Rig) -> None:
    port = await rig.serve()
    wire = await Wire.open(port)
    before = await wire.command(b"CAPABILITY")
    assert b" STARTTLS" in before[0]
    reply = await wire.command(b'LOGIN "%s" "correct horse battery"' % USER.encode())
    assert reply[-1].startswith(b"t2 OK [CAPABILITY IMAP4rev1 ")
    assert b"STARTTLS" not in reply[-1]
    after = await wire.command(b"CAPABILITY")
    assert after[0].startswith(b"* CAPABILITY IMAP4rev1 ") and b"STARTTLS" not in after[0]
    await wire.close()


async def test_recent_is_given_to_one_session_only(rig: Rig) -> None:
    port, appender = await opened(rig)
    readers = []
    for _ in range(2):
        reader = await Wire.open(port)
        await reader.login()
        await reader.command(b"SELECT INBOX")
        readers.append(reader)
    message = b"Subject: new\r\n\r\nhello\r\n"

    # One APPEND per order in which the two selecting sessions notice it.
    for order in (readers, readers[::-1]):
        await appender.send(b"a1 APPEND INBOX {%d+}\r\n%b\r\n" % (len(message), message))
        assert (await appender.until(b"a1"))[-1].startswith(b"a1 OK [APPENDUID ")
        recent = 0
        for reader in order:
            reply = await reader.command(b"NOOP")
            fetched = [line for line in reply if b" FETCH (FLAGS (" in line]
            recent += sum(1 for line in fetched if b"\\Recent" in line)
        assert recent == 1, order
    for wire in (appender, *readers):
        await wire.close()
