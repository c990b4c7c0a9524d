"""Reading delivery status notifications: the recipients, their outcomes, codes and reasons."""

from __future__ import annotations

import base64
from datetime import UTC, datetime

from mailcue_server.mail.bounce_report import RecipientReport, read_bounce
from mailcue_server.mail.dsn import FailedRecipient, build_dsn

WHEN = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


def report(status_part: str, *, transfer: str = "7bit", top: str = "") -> str:
    top = top or 'multipart/report; report-type=delivery-status; boundary="b"'
    return (
        f"From: MAILER-DAEMON@mx.test\r\nSubject: failure\r\nMIME-Version: 1.0\r\n"
        f"Content-Type: {top}\r\n\r\n"
        "--b\r\nContent-Type: text/plain\r\n\r\nIt did not work.\r\n"
        f"--b\r\nContent-Type: message/delivery-status\r\nContent-Transfer-Encoding: {transfer}"
        f"\r\n\r\n{status_part}\r\n--b--\r\n"
    )


BLOCKS = (
    "Reporting-MTA: dns; mx.test\r\n\r\n"
    "Final-Recipient: rfc822; <Gone@Far.Test>\r\nAction: failed\r\nStatus: 5.1.1\r\n"
    "Diagnostic-Code: smtp; 550 5.1.1 <gone@far.test>: Recipient address rejected\r\n\r\n"
    "Final-Recipient: rfc822; full@far.test\r\nAction: delayed\r\nStatus: 4.2.2\r\n"
    "Diagnostic-Code: smtp; 452-4.2.2 Mailbox full\r\n\r\n"
    "Original-Recipient: rfc822; ok@far.test\r\nAction: delivered\r\n\r\n"
    "Final-Recipient: rfc822; odd@far.test\r\nAction: expanded-ish\r\n"
)


def test_our_own_bounces_read_back() -> None:
    raw = build_dsn(
        original=b"From: a@x.test\r\nTo: b@far.test\r\nSubject: Hi\r\n\r\nbody\r\n",
        sender="a@x.test",
        failed=[
            FailedRecipient("b@far.test", "5.1.1", "550 5.1.1 unknown user", "mx.far.test"),
            FailedRecipient("c@gone.test", "5.4.4", "no MX for gone.test", from_remote=False),
        ],
        reporting_mta="mail.x.test",
        arrival=WHEN,
        now=WHEN,
    )
    found = read_bounce(raw)
    assert found.is_dsn
    assert found.recipients == (
        RecipientReport("b@far.test", "hard_bounce", "5.1.1", 550, "550 5.1.1 unknown user"),
        RecipientReport("c@gone.test", "hard_bounce", "5.4.4", None, "no MX for gone.test"),
    )


def test_status_class_decides_and_action_fills_in() -> None:
    found = read_bounce(report(BLOCKS))
    assert found.is_dsn
    assert [(r.recipient, r.outcome, r.status, r.smtp_code) for r in found.recipients] == [
        ("gone@far.test", "hard_bounce", "5.1.1", 550),
        ("full@far.test", "soft_bounce", "4.2.2", 452),
        ("ok@far.test", "delivered", None, None),
    ]  # the block with an unknown action and no status says nothing: left out
    assert found.recipients[0].diagnostic_code == (
        "550 5.1.1 <gone@far.test>: Recipient address rejected"
    )


def test_an_encoded_status_part_is_decoded() -> None:
    encoded = base64.encodebytes(BLOCKS.encode()).decode()
    found = read_bounce(report(encoded, transfer="base64"))
    assert [r.recipient for r in found.recipients] == [
        "gone@far.test",
        "full@far.test",
        "ok@far.test",
    ]


def test_a_status_part_inside_another_kind_of_message_counts() -> None:
    found = read_bounce(report(BLOCKS, top='multipart/mixed; boundary="b"').encode())
    assert found.is_dsn and len(found.recipients) == 3


def test_other_messages_are_not_bounces() -> None:
    plain = read_bounce("From: a@x.test\r\nSubject: out of office\r\n\r\nback monday\r\n")
    assert (plain.is_dsn, plain.recipients) == (False, ())
    empty_report = report("").replace(
        "--b\r\nContent-Type: message/delivery-status\r\nContent-Transfer-Encoding: 7bit\r\n\r\n"
        "\r\n",
        "",
    )
    assert read_bounce(empty_report).is_dsn  # says it is a DSN, names nobody
    assert read_bounce(empty_report).recipients == ()


def test_recipients_that_are_not_addresses_are_dropped() -> None:
    blocks = (
        "Reporting-MTA: dns; mx.test\r\n\r\n"
        "Final-Recipient: rfc822; not an address\r\nStatus: 5.1.1\r\n\r\n"
        f"Final-Recipient: rfc822; {'x' * 330}@far.test\r\nStatus: 5.1.1\r\n\r\n"
        "Action: failed\r\nStatus: 5.1.1\r\n"
    )
    assert read_bounce(report(blocks)).recipients == ()
