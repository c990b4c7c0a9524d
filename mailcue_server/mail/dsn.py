"""Delivery status notifications: the bounce a sender gets when mail could not be delivered.

Pure: builds an RFC 3464 ``multipart/report; report-type=delivery-status``
message (RFC 6522) from what the outbound queue recorded. Its three parts are
a human explanation, the machine-readable ``message/delivery-status`` and the
returned message: its header only (``text/rfc822-headers``) or, when asked
(RFC 3461 ``RET=FULL``, or the server's setting), the whole message exactly
as queued (``message/rfc822``). ``ENVID`` and ``ORCPT`` from the submission
come back as ``Original-Envelope-Id`` and ``Original-Recipient``.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from email import policy
from email.message import Message
from email.mime.text import MIMEText
from email.utils import format_datetime, make_msgid

SUBJECT = "Undelivered Mail Returned to Sender"
_HEADER_END = (b"\r\n\r\n", b"\n\n")
_CRLF = b"\r\n"


@dataclass(frozen=True)
class FailedRecipient:
    """One recipient the message could not reach.

    Attributes:
        address: The envelope recipient.
        status: RFC 3463 enhanced status code, such as ``5.1.1``.
        diagnostic: The remote server's reply (``550 5.1.1 No such user``) or our reason.
        remote_mta: The host that answered, if one did.
        from_remote: Whether ``diagnostic`` is an SMTP reply (``smtp;``) or ours.
        last_attempt: When delivery was last tried.
        original_recipient: RFC 3461 ORCPT as given, ``addr-type;address``, or empty.
    """

    address: str
    status: str
    diagnostic: str
    remote_mta: str = ""
    from_remote: bool = True
    last_attempt: datetime | None = None
    original_recipient: str = ""


def build_dsn(
    *,
    original: bytes,
    sender: str,
    failed: Sequence[FailedRecipient],
    reporting_mta: str,
    arrival: datetime,
    now: datetime,
    full: bool = False,
    envid: str = "",
) -> bytes:
    """The bounce of ``original`` for its envelope ``sender``, CRLF line endings.

    Args:
        original: The message as queued.
        sender: The envelope sender of ``original``: the bounce goes to them.
        failed: The recipients that failed for good (at least one).
        reporting_mta: Our host name (``Reporting-MTA``, ``MAILER-DAEMON@...``).
        arrival: When the message entered the queue.
        now: The bounce's date.
        full: Return the whole message (``message/rfc822``, byte for byte), not
            only its header (``text/rfc822-headers``).
        envid: The sender's RFC 3461 ENVID, returned as ``Original-Envelope-Id``.
    """
    parts = [
        _explanation(reporting_mta, failed, full).as_bytes(policy=policy.SMTP),
        _delivery_status(reporting_mta, arrival, failed, envid).as_bytes(policy=policy.SMTP),
        _returned_message(original) if full else _headers_part(original),
    ]
    boundary = _boundary(original)
    top = Message()
    top["From"] = f"Mail Delivery System <MAILER-DAEMON@{reporting_mta}>"
    top["To"] = _one_line(sender)
    top["Subject"] = SUBJECT
    top["Date"] = format_datetime(now)
    top["Message-ID"] = make_msgid(domain=reporting_mta)
    # RFC 3834 section 5: marks the bounce as automatic, so responders stay quiet.
    top["Auto-Submitted"] = "auto-replied"
    top["MIME-Version"] = "1.0"
    top["Content-Type"] = (
        f'multipart/report; report-type=delivery-status; boundary="{boundary.decode()}"'
    )
    # Put together by hand: the email package would re-fold a returned message.
    head = b"".join(policy.SMTP.fold_binary(name, value) for name, value in top.items())
    delimiter = b"--" + boundary
    body = b"".join(delimiter + _CRLF + part + _CRLF for part in parts)
    return head + _CRLF + body + delimiter + b"--" + _CRLF


def original_header(raw: bytes) -> bytes:
    """The header section of a message (up to the first empty line), as it was."""
    ends = [raw.find(marker) for marker in _HEADER_END]
    found = [end for end in ends if end >= 0]
    if not found:
        return raw
    end = min(found)
    return raw[: end + (2 if raw[end : end + 2] == b"\r\n" else 1)]


def _boundary(original: bytes) -> bytes:
    """A boundary that occurs nowhere in the returned message (RFC 2046 section 5.1.1)."""
    while True:
        boundary = f"mailcue-dsn-{secrets.token_hex(12)}".encode()
        if boundary not in original:
            return boundary


def _explanation(reporting_mta: str, failed: Sequence[FailedRecipient], full: bool) -> MIMEText:
    attached = "It is attached below." if full else "It is attached below (header only)."
    lines = [
        f"This is the mail system at host {reporting_mta}.",
        "",
        "Your message could not be delivered to one or more recipients.",
        attached,
        "",
    ]
    for recipient in failed:
        where = f" (host {recipient.remote_mta})" if recipient.remote_mta else ""
        lines.append(f"<{recipient.address}>{where}: {_one_line(recipient.diagnostic)}")
    return _part(MIMEText("\n".join(lines) + "\n", "plain", _charset("\n".join(lines))))


def _delivery_status(
    reporting_mta: str, arrival: datetime, failed: Sequence[FailedRecipient], envid: str
) -> Message:
    """RFC 3464 section 2.1: one per-message block, then one block per recipient."""
    status = Message()
    status.set_type("message/delivery-status")
    del status["MIME-Version"]
    per_message = Message()
    if envid:
        per_message["Original-Envelope-Id"] = _one_line(envid)
    per_message["Reporting-MTA"] = f"dns; {reporting_mta}"
    per_message["Arrival-Date"] = format_datetime(arrival)
    status.attach(per_message)
    for recipient in failed:
        block = Message()
        if recipient.original_recipient:  # RFC 3464 section 2.3.1: before Final-Recipient
            block["Original-Recipient"] = _one_line(recipient.original_recipient)
        block["Final-Recipient"] = f"rfc822; {_one_line(recipient.address)}"
        block["Action"] = "failed"
        block["Status"] = _one_line(recipient.status)
        if recipient.remote_mta:
            block["Remote-MTA"] = f"dns; {_one_line(recipient.remote_mta)}"
        kind = "smtp" if recipient.from_remote else "X-MailCue"
        block["Diagnostic-Code"] = f"{kind}; {_one_line(recipient.diagnostic)}"
        if recipient.last_attempt is not None:
            block["Last-Attempt-Date"] = format_datetime(recipient.last_attempt)
        status.attach(block)
    return status


def _headers_part(original: bytes) -> bytes:
    text = original_header(original).decode("utf-8", "replace")
    return _part(MIMEText(text, "rfc822-headers", _charset(text))).as_bytes(policy=policy.SMTP)


def _returned_message(original: bytes) -> bytes:
    """The whole message as queued; 8bit when it is not ASCII (RFC 2046 section 5.2.1)."""
    head = b"Content-Type: message/rfc822\r\nContent-Description: Undelivered Message\r\n"
    if not original.isascii():
        head += b"Content-Transfer-Encoding: 8bit\r\n"
    # build_dsn puts a CRLF before the next boundary, which belongs to the boundary
    # (RFC 2046 section 5.1.1): the part's content is the message byte for byte.
    return head + _CRLF + original


def _one_line(text: str) -> str:
    """Multi-line SMTP replies become one line: a header value must not break the header."""
    return " ".join(text.split())


def _charset(text: str) -> str:
    return "us-ascii" if text.isascii() else "utf-8"


def _part(part: MIMEText) -> MIMEText:
    del part["MIME-Version"]  # only the top level carries it (RFC 2045 section 4)
    return part
