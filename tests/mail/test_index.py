"""Index fields from raw bytes: headers, addresses, threading and the light body pass."""

from __future__ import annotations

from datetime import UTC, datetime
from email.utils import getaddresses
from pathlib import Path

import pytest

from mailcue_server.mail.header_block import split_head
from mailcue_server.mail.index import index_message

DATA = Path(__file__).parent.parent / "data"

MULTIPART = (
    b"From: =?UTF-8?Q?J=C3=B6rg_M=C3=BCller?= <joerg@example.test>\r\n"
    b"To: Alice <alice@example.test>, bob@example.test\r\n"
    b'Cc: "Doe, Jane" <jane@example.test>\r\n'
    b"Subject: =?UTF-8?B?R3LDvMOfZSBhdXMgS8O2bG4=?= =?UTF-8?Q?_=E2=80=94_Bericht?=\r\n"
    b"Date: Tue, 24 Nov 2026 08:30:00 +0100\r\n"
    b"Message-ID: <report-7@example.test>\r\n"
    b"In-Reply-To: <question-6@example.test>\r\n"
    b"References: <root-1@example.test>\r\n"
    b" <question-6@example.test>\r\n"
    b"MIME-Version: 1.0\r\n"
    b'Content-Type: multipart/mixed; boundary="outer"\r\n'
    b"\r\n"
    b"preamble\r\n"
    b"--outer\r\n"
    b'Content-Type: multipart/alternative; boundary="inner"\r\n'
    b"\r\n"
    b"--inner\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"Content-Transfer-Encoding: quoted-printable\r\n"
    b"\r\n"
    b"Hallo Alice,=0D=0Ader Bericht f=C3=BCr November liegt bei.\r\n"
    b"--inner\r\n"
    b"Content-Type: text/html; charset=utf-8\r\n"
    b"\r\n"
    b"<p>Hallo <b>Alice</b></p>\r\n"
    b"--inner--\r\n"
    b"--outer\r\n"
    b'Content-Type: application/pdf; name="bericht.pdf"\r\n'
    b"Content-Transfer-Encoding: base64\r\n"
    b"Content-Disposition: attachment; filename*=UTF-8''Bericht%20f%C3%BCr.pdf\r\n"
    b"\r\n"
    b"JVBERi0xLjQK\r\n"
    b"--outer--\r\n"
)


def test_multipart_with_attachment_and_encoded_subject() -> None:
    fields = index_message(MULTIPART)
    assert fields.subject == "Grüße aus Köln — Bericht"
    assert (fields.from_name, fields.from_addr) == ("Jörg Müller", "joerg@example.test")
    assert fields.to_addrs == ("alice@example.test", "bob@example.test")
    assert fields.cc_addrs == ("jane@example.test",)
    assert fields.date == datetime(2026, 11, 24, 7, 30, tzinfo=UTC)
    assert fields.message_id == "<report-7@example.test>"
    assert fields.in_reply_to == "<question-6@example.test>"
    assert fields.references == ("<root-1@example.test>", "<question-6@example.test>")
    assert fields.has_attachments
    assert fields.preview == "Hallo Alice, der Bericht für November liegt bei."
    assert not fields.is_signed
    assert not fields.is_encrypted


def test_a_thread_shares_the_root_id() -> None:
    reply = index_message(MULTIPART)
    root = index_message(b"Message-ID: <root-1@example.test>\r\nSubject: hi\r\n\r\nbody\r\n")
    lone = index_message(b"Message-ID: <other@example.test>\r\n\r\nbody\r\n")
    assert reply.thread_id == root.thread_id != lone.thread_id


def test_fixture_with_attachment() -> None:
    fields = index_message((DATA / "pop3" / "multipart-attachment.eml").read_bytes())
    assert fields.has_attachments
    assert fields.preview == "The report is attached."
    assert fields.from_name == "Reports"


def test_raw_utf8_headers_rfc6532() -> None:
    fields = index_message((DATA / "smtp" / "utf8.eml").read_bytes())
    assert fields.subject == "Grüße aus Köln"
    assert fields.from_addr == "jörg@exämple.test"
    assert fields.to_addrs == ("zoë@mail.test",)
    assert fields.preview.startswith("Schöne Grüße, 8-bit body")


def test_html_only_preview_drops_markup() -> None:
    raw = (
        b"Content-Type: text/html; charset=utf-8\r\n\r\n"
        b"<html><head><style>p{color:red}</style></head>"
        b"<body><p>Caf&eacute; &amp; more</p></body></html>"
    )
    assert index_message(raw).preview == "Café & more"


def test_preview_is_capped() -> None:
    raw = b"Subject: long\r\n\r\n" + b"word " * 200
    assert len(index_message(raw).preview) == 200


@pytest.mark.parametrize(
    ("content_type", "signed", "encrypted"),
    [
        ('multipart/signed; protocol="application/pgp-signature"; boundary=b', True, False),
        ('multipart/encrypted; protocol="application/pgp-encrypted"; boundary=b', False, True),
        ("application/pkcs7-mime; smime-type=enveloped-data", False, True),
        ("application/pkcs7-mime; smime-type=signed-data", True, False),
    ],
)
def test_signed_and_encrypted(content_type: str, signed: bool, encrypted: bool) -> None:
    raw = (
        f"Content-Type: {content_type}\r\n\r\n".encode()
        + b"--b\r\nContent-Type: text/plain\r\n\r\nsigned text\r\n"
        + b"--b\r\nContent-Type: application/pgp-signature\r\n\r\nsig\r\n--b--\r\n"
    )
    fields = index_message(raw)
    assert (fields.is_signed, fields.is_encrypted) == (signed, encrypted)
    assert not fields.has_attachments


def test_inline_pgp() -> None:
    raw = b"Subject: x\r\n\r\n-----BEGIN PGP MESSAGE-----\r\nhQEMA\r\n-----END PGP MESSAGE-----"
    assert index_message(raw).is_encrypted


def test_inline_image_of_related_is_not_an_attachment() -> None:
    raw = (
        b"Content-Type: multipart/related; boundary=r\r\n\r\n"
        b"--r\r\nContent-Type: text/html\r\n\r\n<img src=cid:logo>\r\n"
        b"--r\r\nContent-Type: image/png\r\nContent-ID: <logo>\r\n\r\nPNG\r\n--r--\r\n"
    )
    assert not index_message(raw).has_attachments


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"no header separator at all",
        b"\r\n\r\nbody only",
        b"Content-Type: multipart/mixed\r\n\r\nno boundary",
        b"Content-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\n",
        b"Date: yesterday-ish\r\nFrom: <>\r\nTo: undisclosed-recipients:;\r\n\r\n",
        b"Subject: =?bogus-charset?q?x?=\r\nContent-Type: text/plain; charset=nope\r\n\r\n\xff",
        b"Content-Transfer-Encoding: base64\r\n\r\n!!!not base64",
    ],
)
def test_malformed_mail_never_raises(raw: bytes) -> None:
    index_message(raw)


def test_lf_only_and_missing_date() -> None:
    fields = index_message(b"Subject: lf\nFrom: a@example.test\n\nbody line\n")
    assert (fields.subject, fields.from_addr, fields.date) == ("lf", "a@example.test", None)
    assert fields.preview == "body line"


def test_split_head_keeps_every_byte() -> None:
    for raw in (MULTIPART, b"A: b\n\nc", b"no body", b"\r\nbody"):
        head, body = split_head(raw)
        assert raw.endswith(body)
        assert len(head) + len(body) == len(raw) or raw.startswith(b"\r\n")


@pytest.mark.parametrize(
    "value",
    [
        "Alice <alice@example.test>",
        "alice@example.test",
        "Alice   Smith <alice@example.test>, bob@example.test",
        "<alice@example.test>",
        '"Smith, Alice" <alice@example.test>',
        "alice@example.test (Alice)",
        "=?utf-8?q?J=C3=B6rg?= <j@example.test>",
        "Team: a@example.test, b@example.test;",
    ],
)
def test_address_lists_match_the_stdlib(value: str) -> None:
    fields = index_message(f"To: {value}\r\n\r\n".encode())
    assert list(fields.to_addrs) == [addr for _, addr in getaddresses([value]) if addr]
