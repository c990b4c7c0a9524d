"""Building outgoing mail: structure, encodings, headers, envelope, and refusing bad input."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from email import policy
from email.parser import BytesParser

import pytest

from mailcue_server.errors import Invalid
from mailcue_server.mail.compose import (
    Attachment,
    Built,
    Compose,
    build_message,
    decode_base64_attachment,
)
from mailcue_server.mail.mime import AttachmentInfo, Mailbox, attachment, parse_detail

PDF = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n\x00\xff binary\r\n"
CSV = b"a;b\r\n1;2\n3;4"  # mixed line ends must come back unchanged
DATE = datetime(2026, 11, 24, 8, 30, tzinfo=timezone(timedelta(hours=1)))
BASE = Compose(from_address="sender@example.test", to=("alice@example.test",), date=DATE)


def headers(built: Built) -> list[tuple[str, str]]:
    """The header section as written: (name, value with folding undone)."""
    head = built.raw.split(b"\r\n\r\n", 1)[0].decode("ascii")
    fields = re.sub(r"\r\n(?=[ \t])", "", head).split("\r\n")
    return [(name, value.lstrip(" ")) for name, _, value in (f.partition(":") for f in fields)]


def test_round_trip_gives_back_bodies_attachments_headers_and_addresses() -> None:
    spec = Compose(
        from_address="joerg@example.test",
        from_name="Jörg Müller",
        to=("alice@example.test", "bob@example.test"),
        cc=("carol@example.test",),
        bcc=("dave@example.test",),
        subject="Grüße aus Köln — Bericht",
        text="Hallo Alice,\nder Bericht für November liegt bei.\n",
        html="<p>Hallo <b>Alice</b> \u2013 Grüße</p>\n",
        attachments=(
            Attachment("Bericht für November.pdf", "application/pdf", PDF),
            Attachment("zahlen.csv", "text/csv", CSV),
        ),
        reply_to=("desk@example.test",),
        in_reply_to="<question-6@example.test>",
        references=("<root-1@example.test>", "question-6@example.test"),
        headers=(("X-Campaign", "november"), ("X-Note", "Grüße")),
        message_id="<report-7@example.test>",
        date=DATE,
    )
    built = build_message(spec)
    assert built.message_id == "<report-7@example.test>"
    assert built.recipients == (
        "alice@example.test",
        "bob@example.test",
        "carol@example.test",
        "dave@example.test",
    )
    detail = parse_detail(built.raw)
    assert detail.subject == "Grüße aus Köln — Bericht"
    assert (detail.from_address, detail.from_name) == ("joerg@example.test", "Jörg Müller")
    assert detail.to == (Mailbox("alice@example.test"), Mailbox("bob@example.test"))
    assert detail.cc == (Mailbox("carol@example.test"),)
    assert detail.bcc == ()
    assert detail.reply_to == (Mailbox("desk@example.test"),)
    assert detail.date == datetime(2026, 11, 24, 7, 30, tzinfo=UTC)
    assert detail.message_id == "<report-7@example.test>"
    assert detail.in_reply_to == "<question-6@example.test>"
    assert detail.references == ("<root-1@example.test>", "<question-6@example.test>")
    assert detail.text_body == "Hallo Alice,\nder Bericht für November liegt bei.\n"
    assert detail.html_body == "<p>Hallo <b>Alice</b> \u2013 Grüße</p>\n"
    pdf_name = "Bericht für November.pdf"
    assert detail.attachments == (
        AttachmentInfo("2", pdf_name, "application/pdf", len(PDF), None, "attachment"),
        AttachmentInfo("3", "zahlen.csv", "text/csv", len(CSV), None, "attachment"),
    )
    pdf, csv = attachment(built.raw, "2"), attachment(built.raw, "3")
    assert pdf is not None
    assert csv is not None
    assert (pdf.data, csv.data) == (PDF, CSV)
    assert detail.header_map["X-Campaign"] == "november"
    assert detail.header_map["X-Note"] == "Grüße"
    assert detail.header_map["Date"] == "Tue, 24 Nov 2026 08:30:00 +0100"
    assert "Bcc" not in detail.header_map
    assert b"dave@example.test" not in built.raw
    assert detail.defects == ()


def test_output_is_seven_bit_with_crlf_line_ends() -> None:
    built = build_message(
        replace(BASE, subject="Ünïcödé", text="Grüße\n" + "x" * 300, html="<p>ä</p>")
    )
    assert built.raw.isascii()
    assert built.raw.count(b"\n") == built.raw.count(b"\r\n")
    assert max(len(line) for line in built.raw.split(b"\r\n")) <= 78
    assert b"Subject: =?utf-8?" in built.raw  # RFC 2047


@pytest.mark.parametrize(
    ("text", "html", "attachments", "structure"),
    [
        ("hi", None, (), ["text/plain"]),
        (None, "<p>hi</p>", (), ["text/html"]),
        (None, None, (), ["text/plain"]),
        ("hi", "<p>hi</p>", (), ["multipart/alternative", "text/plain", "text/html"]),
        (
            "hi",
            "<p>hi</p>",
            (Attachment("a.pdf", "application/pdf", PDF),),
            [
                "multipart/mixed",
                "multipart/alternative",
                "text/plain",
                "text/html",
                "application/pdf",
            ],
        ),
        (
            "hi",
            None,
            (Attachment("a.pdf", "application/pdf", PDF),),
            ["multipart/mixed", "text/plain", "application/pdf"],
        ),
    ],
)
def test_mime_structure(
    text: str | None, html: str | None, attachments: tuple[Attachment, ...], structure: list[str]
) -> None:
    built = build_message(replace(BASE, text=text, html=html, attachments=attachments))
    message = BytesParser(policy=policy.default).parsebytes(built.raw)
    assert [part.get_content_type() for part in message.walk()] == structure
    assert [part["MIME-Version"] for part in message.walk()] == ["1.0"] + [None] * (
        len(structure) - 1
    )


@pytest.mark.parametrize(
    ("text", "encoding"),
    [
        ("plain ASCII\nlines\n", "7bit"),
        ("Grüße\n", "quoted-printable"),
        ("y" * 120 + "\n", "quoted-printable"),  # longer than 78: soft line breaks
        ("bell \x07\n", "quoted-printable"),
    ],
)
def test_text_transfer_encoding(text: str, encoding: str) -> None:
    built = build_message(replace(BASE, text=text))
    assert f"Content-Transfer-Encoding: {encoding}\r\n".encode() in built.raw
    assert parse_detail(built.raw).text_body == text


def test_attachments_are_base64_with_rfc2231_filenames() -> None:
    built = build_message(replace(BASE, attachments=(Attachment("Übersicht.pdf", "", PDF),)))
    message = BytesParser(policy=policy.default).parsebytes(built.raw)
    part = next(message.iter_attachments())
    assert part["Content-Transfer-Encoding"] == "base64"
    assert part.get_content_type() == "application/pdf"  # guessed from the extension
    assert part.get_filename() == "Übersicht.pdf"
    assert b"filename*=utf-8''%C3%9Cbersicht.pdf" in built.raw


def test_attachment_filenames_are_made_safe() -> None:
    built = build_message(
        replace(
            BASE,
            attachments=(
                Attachment("../../etc/passwd", "text/plain", b"x"),
                Attachment("", "application/pdf", PDF),
            ),
        )
    )
    names = [item.filename for item in parse_detail(built.raw).attachments]
    assert names == ["passwd", "attachment-3.pdf"]  # the fallback names the part id


def test_forwarded_message_attachment_is_sent_as_7bit() -> None:
    inner = b"From: carol@example.test\r\nSubject: inner\r\n\r\nbody\r\n"
    built = build_message(
        replace(BASE, attachments=(Attachment("fwd.eml", "message/rfc822", inner),))
    )
    assert b"Content-Type: message/rfc822" in built.raw
    part = attachment(built.raw, "2")
    assert part is not None
    assert part.data == inner


def test_generated_message_id_and_date() -> None:
    before = datetime.now(UTC).replace(microsecond=0)
    built = build_message(replace(BASE, date=None, from_address="sender@Example.TEST"))
    assert re.fullmatch(r"<[^<>@\s]+@example\.test>", built.message_id)
    detail = parse_detail(built.raw)
    assert detail.message_id == built.message_id
    assert detail.date is not None
    assert before <= detail.date <= datetime.now(UTC)


@pytest.mark.parametrize(
    "subject",
    [
        # The stdlib's folder loses the space between "длинная" and "тема" here.
        "Привет мир, это длинная тема письма с пробелами между словами и цифрами 2026 года",  # noqa: RUF001 (Russian text)
        "plain ASCII  with\ttabs and  double spaces " + "long " * 20,
        "=?utf-8?q?looks_encoded?=",
    ],
)
def test_subject_round_trips_exactly(subject: str) -> None:
    built = build_message(replace(BASE, subject=subject))
    assert built.raw.isascii()
    assert parse_detail(built.raw).subject == subject.strip()


def test_display_names_are_quoted_or_encoded() -> None:
    built = build_message(replace(BASE, from_name="Doe, Jane"))
    assert ("From", '"Doe, Jane" <sender@example.test>') in headers(built)
    built = build_message(replace(BASE, from_name="Zoë"))
    assert ("From", "=?utf-8?q?Zo=C3=AB?= <sender@example.test>") in headers(built)


def test_envelope_recipients_are_canonical_deduplicated_and_ascii() -> None:
    built = build_message(
        replace(
            BASE,
            to=("Alice@Example.TEST", "bob@bücher.example"),
            cc=("alice@example.test",),
            bcc=("Alice@example.test", "carol@example.test"),
        )
    )
    assert built.recipients == (
        "Alice@example.test",
        "bob@xn--bcher-kva.example",
        "alice@example.test",
        "carol@example.test",
    )
    assert ("To", "Alice@example.test, bob@xn--bcher-kva.example") in headers(built)


def test_long_identifier_fields_are_folded_at_spaces_not_encoded() -> None:
    ids = tuple(f"<{'r' * 50}-{n}@example.test>" for n in range(4))
    url = "https://example.test/unsubscribe?token=" + "t" * 60
    built = build_message(
        replace(
            BASE,
            references=ids,
            list_unsubscribe=(url, "<mailto:leave@example.test>"),
            list_unsubscribe_one_click=True,
        )
    )
    assert b"=?" not in built.raw
    fields = headers(built)
    assert ("References", " ".join(ids)) in fields
    assert ("List-Unsubscribe", f"<{url}>, <mailto:leave@example.test>") in fields
    assert ("List-Unsubscribe-Post", "List-Unsubscribe=One-Click") in fields
    assert parse_detail(built.raw).references == ids


def test_one_click_unsubscribe_needs_an_https_url() -> None:
    spec = replace(
        BASE, list_unsubscribe=("mailto:leave@example.test",), list_unsubscribe_one_click=True
    )
    with pytest.raises(Invalid, match="one-click unsubscribe needs an https: URL"):
        build_message(spec)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"subject": "Hi\r\nBcc: victim@example.test"}, "subject must be one line"),
        ({"subject": "Hi\nX: y"}, "subject must be one line"),
        ({"subject": "Hi\u2028Bcc: victim@example.test"}, "subject must be one line"),
        ({"subject": "Hi\x85there"}, "subject must be one line"),
        ({"subject": "broken \ud800"}, "subject contains invalid Unicode"),
        ({"text": "broken \udc80"}, "text contains invalid Unicode"),
        ({"from_name": "Eve\r\nBcc: victim@example.test"}, "from_name must be one line"),
        ({"headers": (("X-Tag", "a\r\nBcc: victim@example.test"),)}, "Header 'X-Tag' must be"),
        ({"headers": (("X-Tag", "a\x00b"),)}, "Header 'X-Tag' must be one line"),
        ({"headers": (("X-Tag\r\nBcc", "v"),)}, "is not a valid field name"),
        ({"headers": (("X Tag", "v"),)}, "is not a valid field name"),
        ({"headers": (("X:Tag", "v"),)}, "is not a valid field name"),
        ({"headers": (("Content-Type", "text/html"),)}, "written by the message builder"),
        ({"headers": (("content-transfer-encoding", "8bit"),)}, "written by the message builder"),
        ({"headers": (("MIME-Version", "2.0"),)}, "written by the message builder"),
        ({"headers": (("Bcc", "victim@example.test"),)}, "set from the 'bcc' field"),
        ({"headers": (("Subject", "other"),)}, "set from the 'subject' field"),
        ({"headers": (("Sender", "not <an address"),)}, "Header 'Sender' is malformed"),
        (
            {"headers": (("Sender", "a@example.test"), ("Sender", "b@example.test"))},
            "may appear at most 1 time",
        ),
        ({"in_reply_to": "<a@example.test>\r\nBcc: v@example.test"}, "in_reply_to: "),
        ({"references": ("<a@example.test> <b@example.test>",)}, "references: "),
        ({"message_id": "no-at-sign"}, "message_id: 'no-at-sign' is not a message id"),
        ({"list_unsubscribe": ("https://x.test/\r\nBcc: v@example.test",)}, "list_unsubscribe"),
        ({"list_unsubscribe": ("javascript:alert(1)",)}, "is not an https:, http: or mailto:"),
        ({"to": ("not-an-address",)}, "to: Invalid email address 'not-an-address'"),
        ({"to": ("a@example.test\r\nBcc: v@example.test",)}, "to: Invalid email address"),
        ({"from_address": "nobody"}, "from_address: Invalid email address"),
        ({"to": ("jörg@example.test",)}, "needs SMTPUTF8"),
        ({"to": (), "cc": (), "bcc": ()}, "At least one recipient"),
        ({"date": datetime(2026, 11, 24, 8, 30)}, "date must carry a time zone"),
    ],
)
def test_bad_input_is_refused_with_a_clear_message(
    changes: dict[str, object], message: str
) -> None:
    with pytest.raises(Invalid, match=re.escape(message)):
        build_message(replace(BASE, **changes))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("content_type", "data", "message"),
    [
        ("multipart/mixed", b"x", "a multipart type cannot be attached"),
        ("not a type", b"x", "'not a type' is not a media type"),
        ("text/plain\r\nBcc: v@example.test", b"x", "is not a media type"),
        ("message/rfc822", b"Subject: \xff\r\n\r\n", "must be 7-bit text"),
    ],
)
def test_bad_attachments_are_refused(content_type: str, data: bytes, message: str) -> None:
    spec = replace(BASE, attachments=(Attachment("f.bin", content_type, data),))
    with pytest.raises(Invalid, match=re.escape(message)):
        build_message(spec)


def test_decode_base64_attachment() -> None:
    assert decode_base64_attachment("JVBERi0x\nLjQK\r\n") == b"%PDF-1.4\n"
    assert decode_base64_attachment("") == b""


@pytest.mark.parametrize("text", ["JVBERi0xLjQK!", "JVBERi0xLjQ", "JVBERi0xLjQKé==", "a"])
def test_decode_base64_attachment_refuses_bad_input(text: str) -> None:
    with pytest.raises(Invalid, match="Attachment data is not valid base64"):
        decode_base64_attachment(text)
