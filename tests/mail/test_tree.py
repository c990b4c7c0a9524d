"""The one MIME tree: byte ranges, section numbers (RFC 3501 section 6.4.5) and header fields."""

from __future__ import annotations

from pathlib import Path

import pytest

from mailcue_server.mail import tree
from mailcue_server.mail.mime import attachment, parse_detail

MIXED = (
    b"Subject: outer\r\n"
    b'Content-Type: multipart/mixed;\r\n boundary="b"\r\n'
    b"\r\n"
    b"preamble\r\n"
    b"--b\r\n"
    b"Content-Type: text/plain\r\n\r\n"
    b"one\r\n"
    b"--b\r\n"
    b"Content-Type: message/rfc822\r\n\r\n"
    b"Subject: inner\r\n"
    b'Content-Type: multipart/alternative; boundary="c"\r\n\r\n'
    b"--c\r\n\r\nplain\r\n--c\r\nContent-Type: text/html\r\n\r\n<p>html</p>\r\n--c--\r\n"
    b"--b--\r\n"
    b"epilogue\r\n"
)


@pytest.mark.parametrize(
    ("section", "body"),
    [
        ("1", b"one"),
        ("2.1", b"plain"),
        ("2.2", b"<p>html</p>"),
    ],
)
def test_sections_name_the_parts_imap_names(section: str, body: bytes) -> None:
    root = tree.parse(MIXED)
    part = tree.find_id(root, section)
    assert part is not None
    assert part.body() == body


def test_a_part_holding_a_message_is_numbered_like_that_message() -> None:
    root = tree.parse(MIXED)
    holder = tree.find_id(root, "2")
    assert holder is not None and holder.message is not None
    assert holder.message.header.first(b"subject") == b"inner"
    assert tree.find_id(root, "2.3") is None
    assert tree.find_id(root, "1.1") is None  # a text part has no parts
    assert tree.find_id(root, "0") is None


def test_a_message_that_is_not_multipart_has_only_part_one() -> None:
    raw = b"Content-Type: message/rfc822\n\nSubject: inner\n\nhello\n"
    root = tree.parse(raw)
    assert tree.find(root, [1]) is root
    inner = tree.find(root, [1, 1])
    assert inner is not None and inner.body() == b"hello\n"
    assert tree.find(root, [2]) is None


def test_header_fields_folding_garbage_and_line_endings() -> None:
    raw = b"From: a@example.test\nX-Long: one\n\ttwo\nnot a field\n cont\nTo: b\n\nbody\n"
    header = tree.parse_header(raw)
    assert header.first(b"x-long") == b"one\ttwo"
    assert header.first(b"TO") == b"b"
    assert [f.name for f in header.fields] == [b"from", b"x-long", b"to"]
    assert raw[header.end :] == b"body\n"
    # The search that finds one field agrees with the list of every field.
    assert header.first(b"x-long") == tree.parse_header(raw).values(b"x-long")[0]


def test_no_empty_line_means_all_header() -> None:
    root = tree.parse(b"Subject: only a header")
    assert root.header.first(b"subject") == b"only a header"
    assert root.body() == b""


def test_an_unsplittable_multipart_reads_as_text() -> None:
    root = tree.parse(b"Content-Type: multipart/mixed\r\n\r\nno boundary here\r\n")
    assert root.media_type == "text/plain"
    assert tree.find(root, [1]) is root


def test_decoded_body() -> None:
    raw = b"Content-Transfer-Encoding: base64\r\n\r\naGVs\r\nbG8=\r\n"
    assert tree.parse(raw).decoded_body() == b"hello"
    raw = b"Content-Transfer-Encoding: quoted-printable\r\n\r\ncaf=C3=A9=\r\n!\r\n"
    assert tree.parse(raw).decoded_body() == "café!\r\n".encode()


def test_hostile_nesting_is_capped() -> None:
    depth = tree.MAX_DEPTH + 20
    raw = b"".join(
        b'Content-Type: multipart/mixed; boundary="%d"\r\n\r\n--%d\r\n' % (i, i)
        for i in range(depth)
    )
    root = tree.parse(raw + b"leaf\r\n")
    seen = list(tree.walk(root))
    assert len(seen) <= tree.MAX_DEPTH + 1


DATA = Path(__file__).resolve().parent.parent / "data"


@pytest.mark.parametrize("path", sorted(DATA.rglob("*.eml")), ids=lambda p: p.name)
def test_api_part_ids_name_the_octets_imap_names(path: Path) -> None:
    """The detail's attachments (parsed by the stdlib) and IMAP's sections agree on numbers."""
    raw = path.read_bytes()
    root = tree.parse(raw)
    for info in parse_detail(raw).attachments:
        part = tree.find_id(root, info.part_id)
        download = attachment(raw, info.part_id)
        assert part is not None and download is not None, info.part_id
        if part.message is None:  # an attached message is written out again by the API
            assert part.decoded_body() == download.data, info.part_id
