"""IMAP byte transcripts: exact ENVELOPE/BODYSTRUCTURE/section bytes, IDLE, and bad input.

A raw socket client (``imap_rig.Wire``) talks to a real ``ImapServer`` over
the real store on SQLite; every expected line is the exact octets RFC 3501
section 7.4.2 asks for. The messages are the ``tests/data/imap`` fixtures,
delivered in order as UIDs 1 to 4.
"""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

import pytest

from mailcue_server.store import message_queries, messages
from mailcue_server.store.messages import FlagMode

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "store"))  # mail_db
pytest_plugins = ["mail_db", "imap_rig"]
pytest.register_assert_rewrite("imap_rig")

from imap_rig import FIXTURES, NAMES, USER, Rig, Wire, sqlite_only  # noqa: E402

pytestmark = sqlite_only

RAW = [FIXTURES[name] for name in NAMES]

ENVELOPES = [
    b'("Mon, 23 Nov 2026 10:00:00 +0100" "Monthly report attached" (("Reports" NIL "reports" '
    b'"example.test")) (("Reports" NIL "reports" "example.test")) (("Reports" NIL "reports" '
    b'"example.test")) ((NIL NIL "alice" "example.test")) NIL NIL NIL '
    b'"<multipart-1@example.test>")',
    # Encoded-words stay encoded, raw UTF-8 goes out as a literal, the group's name is in
    # the mailbox field of its start marker (RFC 3501 section 7.4.2), and the absent
    # Sender/Reply-To repeat From.
    b'("Tue, 24 Nov 2026 08:30:00 +0100" "=?UTF-8?B?R3LDvMOfZSBhdXMgS8O2bG4g4oCUIOaXpeacrA==?=" '
    b'(("=?UTF-8?Q?J=C3=B6rg_M=C3=BCller?=" NIL "joerg" "example.test")) '
    b'(("=?UTF-8?Q?J=C3=B6rg_M=C3=BCller?=" NIL "joerg" "example.test")) '
    b'(("=?UTF-8?Q?J=C3=B6rg_M=C3=BCller?=" NIL "joerg" "example.test")) '
    b'(({15}\r\nZo\xc3\xab \xc3\x85ngstr\xc3\xb6m NIL "zoe" "example.test")'
    b'("Doe, Jane" NIL "jane" "example.test")) '
    b'((NIL NIL "Friends" NIL)(NIL NIL "anna" "example.test")'
    b'("=?ISO-8859-1?Q?Andr=E9?=" NIL "andre" "example.test")(NIL NIL NIL NIL)) '
    b'NIL "<parent@example.test>" "<non-ascii-1@example.test>")',
    b'("Wed, 25 Nov 2026 12:00:00 +0000" "Nested parts" (("Newsletter" NIL "news" '
    b'"example.test")) (("Newsletter" NIL "news" "example.test")) (("Newsletter" NIL "news" '
    b'"example.test")) ((NIL NIL "alice" "example.test")) NIL NIL NIL "<nested-1@example.test>")',
    b'("Thu, 26 Nov 2026 09:15:00 -0500" "Fwd: Lunch?" (("Alice" NIL "alice" "example.test")) '
    b'(("Alice" NIL "alice" "example.test")) (("Alice" NIL "alice" "example.test")) '
    b'(("Bob" NIL "bob" "example.test")) NIL NIL NIL "<forward-1@example.test>")',
]

# Sizes and line counts cover each part's body only: no MIME header, and not the line
# break that belongs to the next boundary (RFC 2046 section 5.1.1).
BODYSTRUCTURES = [
    b'(("text" "plain" ("charset" "utf-8") NIL NIL "7BIT" 37 2 NIL NIL NIL NIL)'
    b'("application" "pdf" ("name" "report.pdf") NIL NIL "BASE64" 456 NIL '
    b'("attachment" ("filename" "report.pdf")) NIL NIL) "mixed" ("boundary" "=_boundary_42") '
    b"NIL NIL NIL)",
    b'("text" "plain" ("charset" "utf-8") NIL NIL "8BIT" 49 1 NIL NIL NIL NIL)',
    b'((("text" "plain" ("charset" "us-ascii") NIL NIL "7BIT" 14 0 NIL NIL NIL NIL)'
    b'("text" "html" ("charset" "us-ascii") NIL NIL "QUOTED-PRINTABLE" 94 1 NIL NIL NIL NIL) '
    b'"alternative" ("boundary" "inner") NIL NIL NIL)'
    b'("image" "png" ("name" "dot.png") "<dot@example.test>" NIL "BASE64" 96 NIL '
    b'("inline" ("filename" "dot.png")) ("en" "de") NIL) "mixed" ("boundary" "outer") '
    b"NIL NIL NIL)",
    b'(("text" "plain" ("charset" "utf-8") NIL NIL "7BIT" 10 0 NIL NIL NIL NIL)'
    b'("message" "rfc822" NIL NIL "Forwarded message" "7BIT" 379 '
    b'("Wed, 25 Nov 2026 11:00:00 -0500" "Lunch?" (("Carol" NIL "carol" "example.test")) '
    b'(("Carol" NIL "carol" "example.test")) (("Carol" NIL "carol" "example.test")) '
    b'(("Alice" NIL "alice" "example.test")) NIL NIL NIL "<lunch-1@example.test>") '
    b'(("text" "plain" ("charset" "utf-8") NIL NIL "7BIT" 14 0 NIL NIL NIL NIL)'
    b'("text" "html" ("charset" "utf-8") NIL NIL "7BIT" 21 0 NIL NIL NIL NIL) '
    b'"alternative" ("boundary" "alt") NIL NIL NIL) 17 NIL NIL NIL NIL) "mixed" '
    b'("boundary" "fwd") NIL NIL NIL)',
]


async def selected(rig: Rig) -> Wire:
    await rig.deliver(*RAW)
    wire = await Wire.open(await rig.serve())
    await wire.login()
    reply = await wire.command(b"SELECT INBOX")
    assert b"* 4 EXISTS\r\n" in reply
    return wire


def between(raw: bytes, start: bytes, end: bytes) -> bytes:
    """The octets after ``start`` up to (not including) ``end``."""
    first = raw.index(start) + len(start)
    return raw[first : raw.index(end, first)]


async def test_envelope_and_bodystructure_bytes(rig: Rig) -> None:
    wire = await selected(rig)
    for seq, (envelope, structure) in enumerate(zip(ENVELOPES, BODYSTRUCTURES, strict=True), 1):
        reply = await wire.command(b"FETCH %d (ENVELOPE BODYSTRUCTURE)" % seq)
        assert reply[0] == b"* %d FETCH (ENVELOPE %b BODYSTRUCTURE %b)\r\n" % (
            seq,
            envelope,
            structure,
        )
    # FETCH BODY (no section) is BODYSTRUCTURE without the extension data.
    reply = await wire.command(b"FETCH 2 (BODY)")
    assert (
        reply[0]
        == b'* 2 FETCH (BODY ("text" "plain" ("charset" "utf-8") NIL NIL "8BIT" 49 1))\r\n'
    )
    await wire.close()


async def test_sections_are_exact_stored_octets(rig: Rig) -> None:
    wire = await selected(rig)
    attach, nested, forward = RAW[0], RAW[2], RAW[3]

    async def fetch(item: bytes, seq: int = 1) -> bytes:
        reply = await wire.command(b"FETCH %d (%b)" % (seq, item))
        assert reply[-1].split()[1] == b"OK", reply
        line = reply[0]
        head = line.index(b"}\r\n") + 3
        return line[head : -len(b")\r\n")]

    assert await fetch(b"BODY.PEEK[]") == attach
    header, body = attach.split(b"\r\n\r\n", 1)
    assert await fetch(b"BODY.PEEK[HEADER]") == header + b"\r\n\r\n"
    assert await fetch(b"BODY.PEEK[TEXT]") == body
    assert await fetch(b"BODY.PEEK[1]") == b"The report is attached.\r\nTwo lines.\r\n"
    assert await fetch(b"BODY.PEEK[1.MIME]") == (
        b"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 7bit\r\n\r\n"
    )
    pdf = between(attach, b'filename="report.pdf"\r\n\r\n', b"\r\n--=_boundary_42--")
    assert await fetch(b"BODY.PEEK[2]") == pdf
    assert await fetch(b"BODY.PEEK[2]<4.10>") == pdf[4:14]
    assert await fetch(b"BODY.PEEK[HEADER.FIELDS (subject FROM)]") == (
        b"From: Reports <reports@example.test>\r\nSubject: Monthly report attached\r\n\r\n"
    )
    not_fields = await fetch(b"BODY.PEEK[HEADER.FIELDS.NOT (Received Content-Type)]")
    assert b"Received:" not in not_fields
    assert not_fields.startswith(b"From: Reports") and not_fields.endswith(b"\r\n\r\n")
    # Nested multipart/alternative inside multipart/mixed.
    assert await fetch(b"BODY.PEEK[1.1]", 3) == b"Plain version."
    assert await fetch(b"BODY.PEEK[1.2]", 3) == between(
        nested, b"printable\r\n\r\n", b"\r\n--inner--"
    )
    second = b"--inner--\r\n\r\n--outer\r\n"
    assert await fetch(b"BODY.PEEK[2.MIME]", 3) == between(nested, second, b"iVBOR")
    # A message/rfc822 attachment has parts of its own (RFC 3501 section 6.4.5).
    inner = between(forward, b"Forwarded message\r\n\r\n", b"\r\n--fwd--")
    assert await fetch(b"BODY.PEEK[2]", 4) == inner
    assert await fetch(b"BODY.PEEK[2.HEADER]", 4) == inner.split(b"\r\n\r\n")[0] + b"\r\n\r\n"
    assert await fetch(b"BODY.PEEK[2.TEXT]", 4) == inner.split(b"\r\n\r\n", 1)[1]
    assert await fetch(b"BODY.PEEK[2.1]", 4) == b"Lunch at noon?"
    assert await fetch(b"BODY.PEEK[2.2]", 4) == b"<p>Lunch at noon?</p>"
    # A part that does not exist is empty; a non-multipart message has only part 1.
    assert await fetch(b"BODY.PEEK[9]") == b""
    assert await fetch(b"BODY.PEEK[1]", 2) == RAW[1].split(b"\r\n\r\n", 1)[1]
    # Nothing above set \Seen (BODY.PEEK).
    reply = await wire.command(b"FETCH 1:4 (FLAGS)")
    assert all(b"\\Seen" not in line for line in reply)
    await wire.close()


async def test_fetch_body_sets_seen_in_the_same_response(rig: Rig) -> None:
    wire = await selected(rig)
    reply = await wire.command(b"FETCH 2 (FLAGS BODY[HEADER.FIELDS (DATE)])")
    assert reply == [
        b"* 2 FETCH (FLAGS (\\Recent \\Seen) BODY[HEADER.FIELDS (DATE)] {41}\r\n"
        b"Date: Tue, 24 Nov 2026 08:30:00 +0100\r\n\r\n)\r\n",
        b"t3 OK FETCH completed.\r\n",
    ]
    reply = await wire.command(b"UID FETCH 3 (RFC822.TEXT)")
    assert reply[0].startswith(b"* 3 FETCH (RFC822.TEXT {")
    assert reply[1] == b"* 3 FETCH (FLAGS (\\Recent \\Seen) UID 3)\r\n"  # the implicit \Seen
    stored = await message_queries.get_by_uid(USER, "INBOX", 3)
    assert stored.flags & 1  # SystemFlag.SEEN
    await wire.close()


async def test_idle_reports_changes_made_elsewhere(rig: Rig) -> None:
    wire = await selected(rig)
    await wire.send(b"i1 IDLE\r\n")
    assert await wire.line() == b"+ Idling.\r\n"
    started = time.perf_counter()
    [uid] = await rig.deliver(b"Subject: while idle\r\n\r\nhello\r\n")
    assert await wire.line() == b"* 5 EXISTS\r\n"
    assert await wire.line() == b"* 5 RECENT\r\n"
    assert await wire.line() == b"* 5 FETCH (FLAGS (\\Recent))\r\n"
    assert time.perf_counter() - started < 1.0
    await messages.set_flags(USER, "INBOX", [2], ["\\Flagged"], bus=rig.bus, mode=FlagMode.ADD)
    assert await wire.line() == b"* 2 FETCH (FLAGS (\\Flagged \\Recent))\r\n"
    await messages.delete(USER, "INBOX", [1], bus=rig.bus)
    assert await wire.line() == b"* 1 EXPUNGE\r\n"
    assert await wire.line() == b"* 4 RECENT\r\n"
    await wire.send(b"DONE\r\n")
    assert await wire.line() == b"i1 OK IDLE completed.\r\n"
    reply = await wire.command(b"UID FETCH %d (UID)" % uid)
    assert reply[0] == b"* 4 FETCH (UID 5)\r\n"
    await wire.close()


BAD_BEFORE_LOGIN = [
    (b"t1 FROBNICATE", b"t1 BAD FROBNICATE: Unknown command.\r\n"),
    (b"t1 SELECT INBOX", b"t1 BAD SELECT: Must authenticate first.\r\n"),
    (b"t1 FETCH 1 (FLAGS)", b"t1 BAD FETCH: Must authenticate first.\r\n"),
    (b"t1 LOGIN {abc}", b"t1 BAD LOGIN: Invalid arguments.\r\n"),  # malformed literal
    (b"t1 LOGIN alice", b"t1 BAD LOGIN: Invalid arguments.\r\n"),
    (b"", b"* BAD Command not given.\r\n"),
]


async def test_bad_commands_before_login(rig: Rig) -> None:
    port = await rig.serve()
    for line, expected in BAD_BEFORE_LOGIN:
        wire = await Wire.open(port)
        await wire.send(line + b"\r\n")
        assert await wire.line() == expected
        assert (await wire.command(b"NOOP"))[-1] == b"t1 OK NOOP completed.\r\n"
        await wire.close()


async def test_bad_input_after_login(rig: Rig) -> None:
    wire = await selected(rig)
    assert (await wire.command(b"FETCH x:y (FLAGS)"))[-1].startswith(b"t3 BAD FETCH")
    assert (await wire.command(b"SELECT Nowhere"))[-1].startswith(b"t4 NO [NONEXISTENT]")
    assert (await wire.command(b"FETCH 1 (BODY[1.MIME.TEXT])"))[-1].startswith(b"t5 BAD")
    # An over-long line is skipped whole, answered BAD, and the connection lives on.
    reply = await wire.command(b"NOOP " + b"x" * 70_000)
    assert reply[-1] == b"t6 BAD Command line too long.\r\n"
    assert (await wire.command(b"NOOP"))[-1] == b"t7 OK NOOP completed.\r\n"
    # Many small non-synchronizing literals add up: refused as a whole, nothing buffered.
    chunk = b"{50000+}\r\n" + b"y" * 50000
    await wire.send(b"s1 SEARCH TEXT " + b" TEXT ".join([chunk] * 3) + b"\r\n")
    assert await wire.line() == b"s1 NO [TOOBIG] Literal too large.\r\n"
    assert (await wire.command(b"NOOP"))[-1] == b"t8 OK NOOP completed.\r\n"
    await wire.close()


async def test_oversized_append_is_refused_without_storing(rig: Rig) -> None:
    await rig.deliver(RAW[0])
    wire = await Wire.open(await rig.serve(max_message_size=1000))
    await wire.login()
    # A synchronizing literal is refused before the client sends it (RFC 7889).
    await wire.send(b"a1 APPEND INBOX {5000}\r\n")
    assert await wire.line() == b"a1 NO [TOOBIG] Message too large.\r\n"
    # A non-synchronizing one (RFC 7888) is read, thrown away, and refused.
    await wire.send(b"a2 APPEND INBOX {5000+}\r\n" + b"x" * 5000 + b"\r\n")
    assert await wire.line() == b"a2 NO [TOOBIG] Literal too large.\r\n"
    # Small enough: stored, with LITERAL+.
    small = b"Subject: fits\r\n\r\nok\r\n"
    await wire.send(b"a3 APPEND INBOX (\\Seen) {%d+}\r\n%b\r\n" % (len(small), small))
    reply = await wire.until(b"a3")
    assert reply[-1].startswith(b"a3 OK [APPENDUID ")
    page = await message_queries.list_page(USER, "INBOX")
    assert page.total == 2
    assert await message_queries.raw_bytes(USER, "INBOX", 2) == small
    # Far too large to be worth reading: the server hangs up (RFC 7888 section 4).
    await wire.send(b"a4 APPEND INBOX {999999999+}\r\n")
    assert await wire.line() == b"* BYE Literal too large.\r\n"
    with pytest.raises(EOFError):
        await wire.line()
    await wire.close()


async def test_silent_clients_are_logged_out(rig: Rig) -> None:
    wire = await Wire.open(await rig.serve(idle_timeout=0.3))
    await wire.login()
    assert await wire.line() == b"* BYE Autologout; idle for too long.\r\n"
    with pytest.raises(EOFError):
        await wire.line()
    await wire.close()


async def test_starttls_ignores_commands_sent_before_the_handshake(rig: Rig) -> None:
    port = await rig.serve(allow_plaintext_auth=False)
    wire = await Wire.open(port)
    reply = await wire.command(b"CAPABILITY")
    assert b"STARTTLS" in reply[0] and b"LOGINDISABLED" in reply[0]
    # A man in the middle appends a command to STARTTLS (CVE-2011-0411).
    await wire.send(b"s1 STARTTLS\r\ns2 NOOP\r\n")
    assert await wire.line() == b"s1 OK Ready to handshake.\r\n"
    await wire.writer.start_tls(rig.client_context(), server_hostname="localhost")
    reply = await wire.command(b"CAPABILITY")
    assert b"AUTH=PLAIN" in reply[0] and b"STARTTLS" not in reply[0]
    assert reply[-1] == b"t2 OK Capabilities listed.\r\n"  # no reply to the injected s2
    await wire.login()
    await wire.close()


async def test_close_says_bye_to_waiting_and_idle_clients(rig: Rig) -> None:
    await rig.deliver(RAW[0])
    port = await rig.serve()
    waiting = await Wire.open(port)
    idle = await Wire.open(port)
    await idle.login()
    await idle.command(b"SELECT INBOX")
    await idle.send(b"i1 IDLE\r\n")
    assert await idle.line() == b"+ Idling.\r\n"
    await asyncio.wait_for(rig.servers[0].close(grace=2), 5)
    for wire in (waiting, idle):
        assert (await wire.line()).startswith(b"* BYE [UNAVAILABLE]")
        await wire.close()
