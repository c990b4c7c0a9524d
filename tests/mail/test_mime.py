"""The full read of one message: headers, addresses, bodies, attachments, defects, downloads."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from mailcue_server.mail.mime import (
    AttachmentInfo,
    Defect,
    Mailbox,
    attachment,
    parse_detail,
)
from mailcue_server.mail.parts import (
    MAX_FILENAME_BYTES,
    ascii_filename,
    content_disposition,
    safe_filename,
)

MIME = Path(__file__).parent.parent / "data" / "mime"
PDF = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\n%%EOF\n"
PNG_HEAD = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"


def fixture(name: str) -> bytes:
    return (MIME / name).read_bytes()


def kinds(defects: tuple[Defect, ...]) -> list[str]:
    return [defect.kind for defect in defects]


def test_mixed_alternative_headers_and_addresses() -> None:
    raw = fixture("mixed-alternative.eml")
    detail = parse_detail(raw)
    assert detail.subject == "Grüße aus Köln — Bericht"
    assert (detail.from_address, detail.from_name) == ("joerg@example.test", "Jörg Müller")
    assert detail.to == (Mailbox("alice@example.test", "Alice"), Mailbox("bob@example.test"))
    assert detail.cc == (Mailbox("jane@example.test", "Doe, Jane"),)
    assert detail.bcc == ()
    assert detail.reply_to == (Mailbox("desk@example.test", "Réception"),)
    assert detail.date == datetime(2026, 11, 24, 7, 30, tzinfo=UTC)
    assert detail.message_id == "<report-7@example.test>"
    assert detail.in_reply_to == "<question-6@example.test>"
    assert detail.references == ("<root-1@example.test>", "<question-6@example.test>")
    assert detail.size == len(raw)
    assert detail.defects == ()
    assert [name for name, _ in detail.headers] == [
        "From", "To", "Cc", "Reply-To", "Subject", "Date", "Message-ID", "In-Reply-To",
        "References", "Received", "Received", "X-Mailer", "MIME-Version", "Content-Type",
    ]  # fmt: skip
    assert detail.headers[1] == ("To", "Alice <alice@example.test>, bob@example.test")
    assert detail.headers[4] == ("Subject", "Grüße aus Köln — Bericht")
    assert detail.header_map["Received"] == (
        "from relay.example.test by mx.example.test; Tue, 24 Nov 2026 08:30:02 +0100\n"
        "from laptop.example.test by relay.example.test; Tue, 24 Nov 2026 08:30:01 +0100"
    )
    assert detail.header_map["References"] == "<root-1@example.test> <question-6@example.test>"


def test_mixed_alternative_bodies_are_decoded() -> None:
    detail = parse_detail(fixture("mixed-alternative.eml"))
    assert detail.text_body == (
        "Hallo Alice,\n\nder Bericht für November liegt bei. Eine sehr lange Zeile, "
        "die mit einem weichen Umbruch weitergeht.\n\nGrüße\nJörg"
    )
    assert detail.html_body == "<p>Grüße aus <b>Köln</b></p>\n"  # base64, ISO-8859-1
    assert (detail.is_signed, detail.is_encrypted) == (False, False)


def test_mixed_alternative_lists_attachments_with_rfc2231_names() -> None:
    detail = parse_detail(fixture("mixed-alternative.eml"))
    assert detail.attachments == (
        AttachmentInfo(
            "2", "Résumé — November.pdf", "application/pdf", len(PDF), None, "attachment"
        ),
        AttachmentInfo("3", "zahlen.csv", "text/csv", 31, None, "attachment"),
    )
    assert detail.has_attachments is True


def test_attachment_download_gives_exact_bytes_and_disposition() -> None:
    raw = fixture("mixed-alternative.eml")
    pdf = attachment(raw, "2")
    assert pdf is not None
    assert pdf.data == PDF
    assert (pdf.filename, pdf.content_type, pdf.charset) == (
        "Résumé — November.pdf",
        "application/pdf",
        None,
    )
    assert pdf.content_disposition == (
        'attachment; filename="Resume - November.pdf"; '
        "filename*=UTF-8''R%C3%A9sum%C3%A9%20%E2%80%94%20November.pdf"
    )
    assert pdf.content_type_header == "application/pdf"
    csv = attachment(raw, "3")
    assert csv is not None
    assert csv.data == b"monat;betrag\r\nnovember;1.234,56"  # quoted-printable undone
    assert csv.content_type_header == "text/csv; charset=utf-8"


def test_every_leaf_is_addressable_by_its_imap_section_number() -> None:
    raw = fixture("mixed-alternative.eml")
    plain, html = attachment(raw, "1.1"), attachment(raw, "1.2")
    assert plain is not None
    assert html is not None
    assert plain.data.startswith(b"Hallo Alice,\r\n\r\nder Bericht f\xc3\xbcr November")
    assert html.data == "<p>Grüße aus <b>Köln</b></p>\n".encode("iso-8859-1")
    assert (html.filename, html.charset) == ("attachment-1.2.html", "iso-8859-1")
    for missing in ("1", "4", "1.3", "2.1", "0", "01", "1..2", "", "a", "1.", "-1"):
        assert attachment(raw, missing) is None, missing  # "1" is the alternative container


def test_forwarded_message_is_one_attachment_with_its_own_sections() -> None:
    raw = fixture("forwarded.eml")
    detail = parse_detail(raw)
    assert detail.text_body == "See the offer below."
    assert detail.attachments == (
        AttachmentInfo("2", "Angebot Q4.eml", "message/rfc822", 476, None, "attachment"),
    )
    inner = attachment(raw, "2")
    assert inner is not None
    # The embedded message as written, plus the line break that belonged to the delimiter.
    start, end = raw.index(b"From: Carol"), raw.index(b"\r\n--fwd--")
    assert inner.data == raw[start:end] + b"\r\n"
    assert len(inner.data) == 476
    offer = attachment(raw, "2.2")
    assert offer is not None
    assert (offer.filename, offer.content_type, offer.data) == (
        "offer.pdf",
        "application/pdf",
        b"%PDF-1.4\n",
    )
    text = attachment(raw, "2.1")
    assert text is not None
    assert text.data == b"The offer is attached."
    assert attachment(raw, "2.3") is None
    assert attachment(raw, "3") is None


def test_pgp_mime_signed_message() -> None:
    raw = fixture("pgp-signed.eml")
    detail = parse_detail(raw)
    assert (detail.is_signed, detail.is_encrypted) == (True, False)
    assert detail.text_body == "The numbers are final."
    assert detail.attachments == ()  # the signature is not shown as an attachment
    assert detail.has_attachments is False
    signature = attachment(raw, "2")
    assert signature is not None
    assert signature.content_type == "application/pgp-signature"
    assert signature.filename == "signature.asc"
    assert signature.data.startswith(b"-----BEGIN PGP SIGNATURE-----\r\n\r\niHUEARYIAB0W")
    assert signature.data.endswith(b"-----END PGP SIGNATURE-----")


@pytest.mark.parametrize(
    ("content_type", "body", "signed", "encrypted"),
    [
        ("text/plain", "-----BEGIN PGP MESSAGE-----\r\n\r\nhQEMA\r\n", False, True),
        ("text/plain", "-----BEGIN PGP SIGNED MESSAGE-----\r\nHash: SHA256\r\n", True, False),
        (
            'application/pkcs7-mime; smime-type=enveloped-data; name="smime.p7m"',
            "MIAG",
            False,
            True,
        ),
        ('application/pkcs7-mime; smime-type=signed-data; name="smime.p7m"', "MIAG", True, False),
    ],
)
def test_inline_pgp_and_smime_markers(
    content_type: str, body: str, signed: bool, encrypted: bool
) -> None:
    raw = f"From: a@example.test\r\nContent-Type: {content_type}\r\n\r\n{body}".encode()
    detail = parse_detail(raw)
    assert (detail.is_signed, detail.is_encrypted) == (signed, encrypted)
    assert detail.attachments == ()


def test_pgp_mime_encrypted_message() -> None:
    raw = (
        b"From: a@example.test\r\nMIME-Version: 1.0\r\n"
        b'Content-Type: multipart/encrypted; protocol="application/pgp-encrypted"; boundary=e\r\n'
        b"\r\n--e\r\nContent-Type: application/pgp-encrypted\r\n\r\nVersion: 1\r\n"
        b'--e\r\nContent-Type: application/octet-stream; name="encrypted.asc"\r\n\r\n'
        b"-----BEGIN PGP MESSAGE-----\r\n\r\nhQEMA\r\n-----END PGP MESSAGE-----\r\n--e--\r\n"
    )
    detail = parse_detail(raw)
    assert (detail.is_signed, detail.is_encrypted) == (False, True)
    assert (detail.text_body, detail.attachments) == (None, ())
    ciphertext = attachment(raw, "2")
    assert ciphertext is not None
    assert ciphertext.data.startswith(b"-----BEGIN PGP MESSAGE-----")


def test_eight_bit_headers_are_read_as_utf8_with_replacement() -> None:
    detail = parse_detail(fixture("8bit-headers.eml"))
    assert detail.subject == "Grüße aus Köln"
    assert (detail.from_address, detail.from_name) == ("joerg@example.test", "Jörg Müller")
    assert detail.header_map["X-Legacy"] == "caf\ufffd"  # a Latin-1 byte is not UTF-8
    assert detail.text_body == "Bücher & Zeitschriften"  # no charset, 8bit: UTF-8
    assert detail.attachments == (
        AttachmentInfo("2", "Übersicht.txt", "text/plain", 5, None, "attachment"),
    )
    assert kinds(detail.defects) == ["UndecodableBytesDefect"]


def test_bare_lf_message() -> None:
    raw = fixture("bare-lf.eml")
    assert b"\r" not in raw
    detail = parse_detail(raw)
    assert detail.text_body == "Line one\nLine two"
    assert detail.date == datetime(2026, 11, 27, 17, 0, tzinfo=UTC)
    assert detail.attachments == (
        AttachmentInfo("2", "dot.png", "image/png", len(PNG_HEAD), None, "attachment"),
    )
    image = attachment(raw, "2")
    assert image is not None
    assert image.data == PNG_HEAD


def test_multipart_without_boundary_is_shown_as_text() -> None:
    raw = fixture("missing-boundary.eml")
    detail = parse_detail(raw)
    assert detail.text_body == ("--lost\nContent-Type: text/plain\n\nStill readable.\n--lost--\n")
    assert detail.attachments == ()
    assert kinds(detail.defects) == [
        "NoBoundaryInMultipartDefect",
        "MultipartInvariantViolationDefect",
    ]
    whole = attachment(raw, "1")
    assert whole is not None
    assert (whole.content_type, whole.data[:6]) == ("text/plain", b"--lost")


def test_truncated_message_keeps_what_arrived() -> None:
    raw = fixture("truncated.eml")
    detail = parse_detail(raw)
    assert detail.text_body == "First part is whole."
    assert detail.attachments == (
        AttachmentInfo("2", "data.bin", "application/octet-stream", 8, None, "attachment"),
    )
    assert detail.defects == (
        Defect(
            "2", "InvalidBase64PaddingDefect", "base64 encoded sequence had an incorrect length"
        ),
        Defect(
            "",
            "CloseBoundaryNotFoundDefect",
            "A start boundary was found, but not the corresponding close boundary.",
        ),
    )
    data = attachment(raw, "2")
    assert data is not None
    assert data.data == bytes(range(8))


def test_path_tricks_in_filenames_are_neutralised() -> None:
    raw = fixture("path-trick.eml")
    detail = parse_detail(raw)
    assert [(item.part_id, item.filename) for item in detail.attachments] == [
        ("2", "passwd"),
        ("3", "evil.exe"),
        ("4", "bootgpj.exe_"),  # CR, LF, NUL and U+202E dropped; the quote replaced
        ("5", "attachment-5.png"),
        ("6", "_CON.txt"),
        ("7", "Отчёт.docx"),  # RFC 2047 inside the quoted parameter: letters kept
    ]
    trick = attachment(raw, "4")
    assert trick is not None
    assert trick.content_disposition == (
        "attachment; filename=\"bootgpj.exe_\"; filename*=UTF-8''bootgpj.exe_"
    )
    cyrillic = attachment(raw, "7")
    assert cyrillic is not None
    assert cyrillic.content_disposition == (
        'attachment; filename="attachment-7.docx"; '
        "filename*=UTF-8''%D0%9E%D1%82%D1%87%D1%91%D1%82.docx"
    )


def test_headers_that_crash_the_stdlib_parser_are_kept_as_text() -> None:
    # CPython issues 151857 and 148518: IndexError from the structured header parsers.
    raw = fixture("hostile-headers.eml")
    detail = parse_detail(raw)
    assert detail.text_body == "Body survives."
    assert (detail.to, detail.cc) == ((), ())
    assert detail.header_map["To"] == '"'
    assert detail.defects == (
        Defect("", "InvalidHeaderDefect", "To: unparsable; kept as plain text"),
        Defect("", "InvalidHeaderDefect", "Cc: unparsable; kept as plain text"),
    )
    assert detail.attachments == (
        AttachmentInfo("2", "attachment-2.bin", "application/octet-stream", 4, None, "attachment"),
    )
    data = attachment(raw, "2")
    assert data is not None
    assert data.data == b"data"


def test_sixty_levels_of_multipart_stop_at_fifty() -> None:
    raw = fixture("deep-60.eml")
    detail = parse_detail(raw)
    fiftieth = ".".join(["1"] * 50)
    assert detail.defects == (
        Defect(fiftieth, "NestingTooDeep", "multiparts nested deeper than 50 levels are not read"),
    )
    assert detail.text_body is None  # it sits at level 60
    assert detail.attachments == (
        AttachmentInfo("2", "top.bin", "application/octet-stream", 3, None, "attachment"),
    )
    assert attachment(raw, ".".join(["1"] * 51)) is None
    top = attachment(raw, "2")
    assert top is not None
    assert top.data == b"TOP"


def _nested(levels: int) -> bytes:
    opening = b"".join(
        b'Content-Type: multipart/mixed; boundary="b%d"\r\n\r\n--b%d\r\n' % (i, i)
        for i in range(levels)
    )
    closing = b"".join(b"--b%d--\r\n" % i for i in reversed(range(levels)))
    return b"Subject: deep\r\n" + opening + b"Content-Type: text/plain\r\n\r\nx\r\n" + closing


def test_absurd_nesting_is_read_as_headers_and_text_without_the_parser() -> None:
    raw = _nested(5000)  # the stdlib parser would raise RecursionError after seconds
    detail = parse_detail(raw)
    assert detail.subject == "deep"
    assert detail.defects == (
        Defect(
            "", "NestingTooDeep", "multiparts nest too deep to read; the body is shown as text"
        ),
    )
    assert detail.text_body is not None
    assert detail.text_body.startswith("--b0\nContent-Type: multipart/mixed")
    assert attachment(raw, "1.1") is None


def test_absurdly_many_parts_are_read_as_headers_and_text() -> None:
    parts = b"".join(b"--p\r\nContent-Type: text/plain\r\n\r\n%d\r\n" % i for i in range(3000))
    raw = (
        b'Subject: wide\r\nContent-Type: multipart/mixed; boundary="p"\r\n\r\n' + parts + b"--p--"
    )
    detail = parse_detail(raw)
    assert kinds(detail.defects) == ["TooManyParts"]
    assert detail.attachments == ()


def test_related_resources_are_inline_with_their_content_id() -> None:
    raw = (
        b"From: a@example.test\r\nMIME-Version: 1.0\r\n"
        b'Content-Type: multipart/related; boundary="r"\r\n\r\n'
        b"--r\r\nContent-Type: text/html; charset=utf-8\r\n\r\n"
        b'<img src="cid:logo@example.test">\r\n'
        b"--r\r\nContent-Type: image/png\r\nContent-ID: <logo@example.test>\r\n"
        b"Content-Transfer-Encoding: base64\r\n\r\niVBORw0KGgoAAAANSUhEUg==\r\n--r--\r\n"
    )
    detail = parse_detail(raw)
    assert detail.html_body == '<img src="cid:logo@example.test">'
    assert detail.attachments == (
        AttachmentInfo("2", "attachment-2.png", "image/png", 16, "logo@example.test", "inline"),
    )
    assert detail.has_attachments is False  # as in mail.index: resources are not attachments


def test_unknown_charset_falls_back_to_utf8_and_says_so() -> None:
    raw = "Content-Type: text/plain; charset=x-klingon\r\n\r\nZür ä\xff".encode()
    detail = parse_detail(raw)
    assert detail.text_body == "Zür ä\xff"
    assert detail.defects == (
        Defect("1", "UnknownCharset", "charset 'x-klingon' unknown; read as UTF-8"),
    )


def test_single_part_message_body_is_part_one() -> None:
    raw = b"From: a@example.test\r\nSubject: plain\r\n\r\nhello\r\n"
    detail = parse_detail(raw)
    assert (detail.text_body, detail.attachments, detail.defects) == ("hello\n", (), ())
    body = attachment(raw, "1")
    assert body is not None
    assert (body.data, body.content_type) == (b"hello\r\n", "text/plain")
    assert attachment(raw, "2") is None


def test_header_map_merges_repeats_under_the_first_spelling() -> None:
    raw = b"X-Tag: one\r\nx-tag: two\r\nSubject: s\r\n\r\n"
    assert parse_detail(raw).header_map == {"X-Tag": "one\ntwo", "Subject": "s"}


@pytest.mark.parametrize(
    ("name", "content_type", "expected"),
    [
        ("../../etc/passwd", "text/plain", "passwd"),
        ("C:\\Windows\\evil.exe", "application/octet-stream", "evil.exe"),
        ("a\r\nb\x00c.txt", "text/plain", "abc.txt"),
        ('say "hi" <now>?.txt', "text/plain", "say _hi_ _now__.txt"),
        ("report\u202egpj.exe", "application/octet-stream", "reportgpj.exe"),
        ("  .hidden  ", "text/plain", "hidden"),
        ("tabs\tand   spaces.txt", "text/plain", "tabsand spaces.txt"),
        ("...", "application/pdf", "attachment-2.pdf"),
        (None, "application/x-unknown", "attachment-2.bin"),
        ("lpt1", "text/plain", "_lpt1"),
        ("Grüße 报告.pdf", "application/pdf", "Grüße 报告.pdf"),
    ],
)
def test_safe_filename(name: str | None, content_type: str, expected: str) -> None:
    assert safe_filename(name, "2", content_type) == expected


def test_safe_filename_cuts_long_names_keeping_the_extension() -> None:
    name = safe_filename("é" * 300 + ".pdf", "2", "application/pdf")
    assert name == "é" * 125 + ".pdf"
    assert len(name.encode("utf-8")) <= MAX_FILENAME_BYTES


@pytest.mark.parametrize(
    ("filename", "expected"),
    [
        ("Grüße.pdf", "attachment; filename=\"Grusse.pdf\"; filename*=UTF-8''Gr%C3%BC%C3%9Fe.pdf"),
        ("100%.txt", "attachment; filename=\"100_.txt\"; filename*=UTF-8''100%25.txt"),
        (
            "报告.pdf",
            "attachment; filename=\"attachment-3.pdf\"; filename*=UTF-8''%E6%8A%A5%E5%91%8A.pdf",
        ),
        (
            "a;b=c's.txt",
            "attachment; filename=\"a;b=c's.txt\"; filename*=UTF-8''a%3Bb%3Dc%27s.txt",
        ),
    ],
)
def test_content_disposition(filename: str, expected: str) -> None:
    fallback = ascii_filename(filename, "3", "application/pdf")
    assert content_disposition(filename, fallback) == expected
