"""IMAP byte transcripts for the MIME tree: sections inside embedded messages, ENVELOPE
addresses, and SEARCH BODY/FROM (issue 12, section 2, items 4 to 6).

Each test talks raw IMAP to a real ``ImapServer`` over the real store on SQLite
(``imap_rig.Wire``) and checks the exact octets RFC 3501 asks for: section
numbers (6.4.5), ENVELOPE address structures (7.4.2) and the SEARCH keys (6.4.4).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "store"))  # mail_db
pytest_plugins = ["mail_db", "imap_rig"]
pytest.register_assert_rewrite("imap_rig")

from imap_rig import Rig, Wire, sqlite_only  # noqa: E402

pytestmark = sqlite_only


def crlf(text: str) -> bytes:
    return text.replace("\n", "\r\n").encode()


INNER = crlf("From: sub@example.org\nSubject: inside\n\nHello inside\n")

# A message whose whole body is another message (no multipart around it).
WRAPPED = (
    crlf("From: outer@example.org\nMIME-Version: 1.0\nContent-Type: message/rfc822\n\n") + INNER
)

# Two messages deep.
TWICE = (
    crlf("From: top@example.org\nContent-Type: message/rfc822\n\n")
    + crlf("From: middle@example.org\nContent-Type: message/rfc822\n\n")
    + INNER
)

# An embedded digest: its parts default to message/rfc822 (RFC 2046 section 5.1.5);
# the first has an empty MIME header, the second a field of its own; the delimiter
# lines carry transport padding.
DIGEST_BODY = crlf(
    "From: sub@example.org\n"
    'Content-Type: multipart/digest; boundary="d"\n'
    "\n"
    "preamble\n"
    "--d \n"
    "\n"
    "From: one@example.org\nSubject: one\n\nfirst body\n"
    "--d\n"
    "X-Part: second\n"
    "\n"
    "From: two@example.org\nSubject: two\n\nsecond body\n"
    "--d--\n"
    "epilogue\n"
)
DIGEST = crlf("From: outer@example.org\nContent-Type: message/rfc822\n\n") + DIGEST_BODY


async def fetch_section(wire: Wire, seq: int, item: bytes) -> bytes:
    """The octets of one ``BODY.PEEK[...]`` item."""
    reply = await wire.command(b"FETCH %d (BODY.PEEK[%b])" % (seq, item))
    assert reply[-1].split()[1] == b"OK", reply
    line = reply[0]
    if b"}\r\n" not in line:  # a quoted empty string
        assert line.endswith(b'] "")\r\n'), line
        return b""
    head = line.index(b"}\r\n") + 3
    return line[head : -len(b")\r\n")]


async def session(rig: Rig, *raws: bytes) -> Wire:
    await rig.deliver(*raws)
    wire = await Wire.open(await rig.serve())
    await wire.login()
    reply = await wire.command(b"SELECT INBOX")
    assert b"* %d EXISTS\r\n" % len(raws) in reply
    return wire


async def test_sections_of_a_message_that_is_one_embedded_message(rig: Rig) -> None:
    wire = await session(rig, WRAPPED, TWICE)
    inner_header, inner_text = INNER.split(b"\r\n\r\n", 1)
    # Part 1 of a message that is not multipart is its body: the whole embedded message.
    assert await fetch_section(wire, 1, b"TEXT") == INNER
    assert await fetch_section(wire, 1, b"1") == INNER
    # 1.HEADER and 1.TEXT are the embedded message's header and text.
    assert await fetch_section(wire, 1, b"1.HEADER") == inner_header + b"\r\n\r\n"
    assert await fetch_section(wire, 1, b"1.HEADER.FIELDS (SUBJECT)") == (
        b"Subject: inside\r\n\r\n"
    )
    assert await fetch_section(wire, 1, b"1.TEXT") == inner_text
    # 1.1 is the embedded message's own part 1: its body.
    assert await fetch_section(wire, 1, b"1.1") == inner_text
    assert await fetch_section(wire, 1, b"1.2") == b""
    # Two levels: 1 is the middle message, 1.1 the inner one, 1.1.1 its body.
    middle = TWICE.split(b"\r\n\r\n", 1)[1]
    assert await fetch_section(wire, 2, b"1") == middle
    assert await fetch_section(wire, 2, b"1.HEADER") == (
        b"From: middle@example.org\r\nContent-Type: message/rfc822\r\n\r\n"
    )
    assert await fetch_section(wire, 2, b"1.TEXT") == INNER
    assert await fetch_section(wire, 2, b"1.1") == INNER
    assert await fetch_section(wire, 2, b"1.1.HEADER") == inner_header + b"\r\n\r\n"
    assert await fetch_section(wire, 2, b"1.1.TEXT") == inner_text
    assert await fetch_section(wire, 2, b"1.1.1") == inner_text
    await wire.close()


async def test_mime_headers_and_parts_inside_an_embedded_digest(rig: Rig) -> None:
    wire = await session(rig, DIGEST)
    assert await fetch_section(wire, 1, b"1") == DIGEST_BODY
    assert await fetch_section(wire, 1, b"1.HEADER") == (
        b'From: sub@example.org\r\nContent-Type: multipart/digest; boundary="d"\r\n\r\n'
    )
    first = crlf("From: one@example.org\nSubject: one\n\nfirst body")
    second = crlf("From: two@example.org\nSubject: two\n\nsecond body")
    assert await fetch_section(wire, 1, b"1.1") == first
    assert await fetch_section(wire, 1, b"1.1.MIME") == b"\r\n"
    assert await fetch_section(wire, 1, b"1.1.HEADER") == (
        b"From: one@example.org\r\nSubject: one\r\n\r\n"
    )
    assert await fetch_section(wire, 1, b"1.1.TEXT") == b"first body"
    assert await fetch_section(wire, 1, b"1.2") == second
    assert await fetch_section(wire, 1, b"1.2.MIME") == b"X-Part: second\r\n\r\n"
    assert await fetch_section(wire, 1, b"1.2.HEADER") == (
        b"From: two@example.org\r\nSubject: two\r\n\r\n"
    )
    assert await fetch_section(wire, 1, b"1.2.TEXT") == b"second body"
    # The BODYSTRUCTURE agrees: one message/rfc822 part holding the digest.
    reply = await wire.command(b"FETCH 1 (BODY)")
    assert reply[0].startswith(b'* 1 FETCH (BODY ("message" "rfc822" NIL NIL NIL "7BIT" ')
    assert b'"digest")' in reply[0]
    await wire.close()


ADDRESSES = crlf(
    "Date: Mon, 23 Nov 2026 10:00:00 +0100\n"
    "From: <@relay.example,@hub.example:user@example.test>\n"
    "Reply-To: joe@example.test (Joe Bloggs)\n"
    "To: Friends: a@example.test, (just a comment), b@example.test;, (only a comment)\n"
    "Cc: (foo)\n"
    "Bcc: undisclosed-recipients:;\n"
    "\n"
    "body\n"
)


async def test_envelope_groups_comments_and_source_routes(rig: Rig) -> None:
    wire = await session(rig, ADDRESSES)
    reply = await wire.command(b"FETCH 1 (ENVELOPE)")
    assert reply[0] == (
        b'* 1 FETCH (ENVELOPE ("Mon, 23 Nov 2026 10:00:00 +0100" NIL '
        # A source route goes in the adl field (RFC 3501 section 7.4.2).
        b'((NIL "@relay.example,@hub.example" "user" "example.test")) '
        b'((NIL "@relay.example,@hub.example" "user" "example.test")) '
        # A comment names an address that has no display name.
        b'(("Joe Bloggs" NIL "joe" "example.test")) '
        # A group's name is in the mailbox field of its start marker; comments alone
        # make no address.
        b'((NIL NIL "Friends" NIL)(NIL NIL "a" "example.test")(NIL NIL "b" "example.test")'
        b"(NIL NIL NIL NIL)) "
        b"NIL "
        b'((NIL NIL "undisclosed-recipients" NIL)(NIL NIL NIL NIL)) '
        b"NIL NIL))\r\n"
    )
    await wire.close()


HEADER_ONLY = crlf(
    "From: RealFrom <sender@example.org>\n"
    "Subject: zebracorn in the subject\n"
    "X-Note: quokka in a header\n"
    "\n"
    "plain words only\n"
)
IN_BODY = crlf("From: other@example.org\nSubject: hello\n\nthe zebracorn is here\n")
COMMENTED = crlf(
    "From: <sender (a comment)@ (another) example.org>\n"
    "To: Team: first@example.org, second@example.org;\n"
    "Subject: x\n\nnothing\n"
)
NAMED_BY_COMMENT = crlf("From: sender@example.org (Real Sender)\nSubject: y\n\nnothing\n")


async def test_search_body_reads_the_body_and_from_sees_through_comments(rig: Rig) -> None:
    wire = await session(rig, HEADER_ONLY, IN_BODY, COMMENTED, NAMED_BY_COMMENT)

    async def search(criteria: bytes) -> bytes:
        reply = await wire.command(b"SEARCH " + criteria)
        assert reply[-1].split()[1] == b"OK", reply
        return reply[0]

    # BODY: the body only (RFC 3501 section 6.4.4); TEXT: header or body.
    assert await search(b"BODY zebracorn") == b"* SEARCH 2\r\n"
    assert await search(b"BODY quokka") == b"* SEARCH\r\n"
    assert await search(b"TEXT zebracorn") == b"* SEARCH 1 2\r\n"
    assert await search(b"TEXT quokka") == b"* SEARCH 1\r\n"
    # Inside OR and NOT too.
    assert await search(b"OR BODY quokka BODY nothing") == b"* SEARCH 3 4\r\n"
    assert await search(b"NOT BODY zebracorn") == b"* SEARCH 1 3 4\r\n"
    # FROM compares the address without its comments, and the display name.
    assert await search(b"FROM sender@example.org") == b"* SEARCH 1 3 4\r\n"
    assert await search(b"FROM ender@exam") == b"* SEARCH 1 3 4\r\n"
    assert await search(b"FROM realfrom") == b"* SEARCH 1\r\n"
    assert await search(b'FROM "real sender"') == b"* SEARCH 4\r\n"
    # TO finds a group by its name and its members.
    assert await search(b"TO team") == b"* SEARCH 3\r\n"
    assert await search(b"TO second@example.org") == b"* SEARCH 3\r\n"
    await wire.close()
