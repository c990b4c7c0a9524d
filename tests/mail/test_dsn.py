"""The DSN builder: an RFC 3464 report any mail library can read back."""

from __future__ import annotations

from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.message import Message

from mailcue_server.mail.dsn import FailedRecipient, build_dsn, original_header

ORIGINAL = (
    b"From: Ana <ana@example.test>\r\nTo: bob@far.test\r\nSubject: Hi\r\n"
    b"Message-ID: <hi@example.test>\r\n\r\nsecret body\r\n"
)
WHEN = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


def _dsn(*failed: FailedRecipient, original: bytes = ORIGINAL) -> bytes:
    return build_dsn(
        original=original,
        sender="ana@example.test",
        failed=failed,
        reporting_mta="mail.example.test",
        arrival=WHEN,
        now=WHEN,
    )


def test_report_structure_and_fields() -> None:
    raw = _dsn(
        FailedRecipient("bob@far.test", "5.1.1", "550 5.1.1 unknown\r\n user", "mx.far.test"),
        FailedRecipient("eve@gone.test", "5.1.2", "gone.test does not exist", from_remote=False),
    )
    assert b"\r\n" in raw and b"\n" not in raw.replace(b"\r\n", b"")  # CRLF throughout
    report = message_from_bytes(raw, policy=policy.default)
    assert report["To"] == "ana@example.test"
    assert report["Subject"] == "Undelivered Mail Returned to Sender"
    assert report.get_content_type() == "multipart/report"
    assert report.get_param("report-type") == "delivery-status"
    human, status, headers = report.get_payload()
    assert "bob@far.test" in human.get_content() and "eve@gone.test" in human.get_content()
    per_message, bob, eve = status.get_payload()
    assert per_message["Reporting-MTA"] == "dns; mail.example.test"
    assert per_message["Arrival-Date"] == "Tue, 24 Nov 2026 12:00:00 +0000"
    assert bob["Final-Recipient"] == "rfc822; bob@far.test"
    assert bob["Diagnostic-Code"] == "smtp; 550 5.1.1 unknown user"  # folded onto one line
    assert bob["Remote-MTA"] == "dns; mx.far.test"
    assert eve["Diagnostic-Code"] == "X-MailCue; gone.test does not exist"
    assert eve["Remote-MTA"] is None
    assert headers.get_content_type() == "text/rfc822-headers"
    assert headers.get_payload(decode=True) == original_header(ORIGINAL)


def test_original_header_stops_at_the_first_empty_line() -> None:
    assert original_header(ORIGINAL).endswith(b"<hi@example.test>\r\n")
    assert original_header(b"Subject: x\n\nbody\n") == b"Subject: x\n"
    assert original_header(b"Subject: no body") == b"Subject: no body"


def test_non_ascii_headers_survive() -> None:
    original = "Subject: Grüße\r\n\r\nbody\r\n".encode()
    report = message_from_bytes(
        _dsn(FailedRecipient("bob@far.test", "5.0.0", "550 no"), original=original),
        policy=policy.default,
    )
    headers = report.get_payload()[2]
    assert "Grüße" in headers.get_payload(decode=True).decode("utf-8")


def _parts(raw: bytes) -> list[Message]:
    report = message_from_bytes(raw, policy=policy.default)
    found = report.get_payload()
    assert isinstance(found, list)
    return found


def test_full_return_carries_the_message_byte_for_byte() -> None:
    original = (
        "From: ana@example.test\r\nSubject: Grüße\r\n\r\nline one\r\n"
        "--mailcue-dsn-looks-like-a-boundary\r\n\r\nlast line\r\n"
    ).encode()
    raw = build_dsn(
        original=original,
        sender="ana@example.test",
        failed=[FailedRecipient("bob@far.test", "5.1.1", "550 no")],
        reporting_mta="mail.example.test",
        arrival=WHEN,
        now=WHEN,
        full=True,
    )
    human, _, returned = _parts(raw)
    assert "header only" not in human.get_content()
    assert returned.get_content_type() == "message/rfc822"
    assert returned["Content-Transfer-Encoding"] == "8bit"  # not ASCII
    [inner] = returned.get_payload()
    assert inner["Subject"] == "Grüße"
    # Exactly the queued bytes between the part's blank line and the closing boundary.
    boundary = message_from_bytes(raw, policy=policy.default).get_boundary()
    assert boundary is not None and boundary.encode() not in original
    start = raw.index(b"Content-Description: Undelivered Message\r\n")
    body = raw[raw.index(b"\r\n\r\n", start) + 4 :]
    # (the CRLF before the closing delimiter belongs to it, RFC 2046 section 5.1.1)
    assert body == original + b"\r\n--" + boundary.encode() + b"--\r\n"


def test_an_ascii_full_return_needs_no_transfer_encoding() -> None:
    raw = build_dsn(
        original=ORIGINAL,
        sender="ana@example.test",
        failed=[FailedRecipient("bob@far.test", "5.1.1", "550 no")],
        reporting_mta="mail.example.test",
        arrival=WHEN,
        now=WHEN,
        full=True,
    )
    returned = _parts(raw)[2]
    assert returned["Content-Transfer-Encoding"] is None
    assert b"secret body" in raw


def test_envid_and_orcpt_come_back_in_the_report() -> None:
    raw = build_dsn(
        original=ORIGINAL,
        sender="ana@example.test",
        failed=[
            FailedRecipient(
                "bob@far.test", "5.1.1", "550 no", original_recipient="rfc822;Sales@far.test"
            ),
            FailedRecipient("eve@far.test", "5.1.1", "550 no"),
        ],
        reporting_mta="mail.example.test",
        arrival=WHEN,
        now=WHEN,
        envid="order-42",
    )
    _, status, headers = _parts(raw)
    per_message, bob, eve = status.get_payload()
    assert per_message["Original-Envelope-Id"] == "order-42"
    assert bob["Original-Recipient"] == "rfc822;Sales@far.test"
    assert list(bob.keys())[:2] == ["Original-Recipient", "Final-Recipient"]
    assert eve["Original-Recipient"] is None
    assert headers.get_content_type() == "text/rfc822-headers"
    assert b"secret body" not in raw  # headers only unless asked
