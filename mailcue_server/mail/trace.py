"""Trace fields that make an injected message look delivered (RFC 5321 section 4.4).

Injected test mail skips SMTP, so it has no ``Return-Path`` or ``Received``
fields. Tests of code that reads those (spam filters, parsers of delivery
paths) get a plausible pair: a hop from the sender's domain to us, then
our delivery. Pure: strings and a time in, bytes out.
"""

from __future__ import annotations

import secrets
from datetime import datetime
from email.utils import format_datetime

# TEST-NET-3 (RFC 5737): an address that can never be a real sender.
_DOCUMENTATION_IP = "203.0.113.25"


def trace_headers(
    *, sender: str, recipient: str, hostname: str, when: datetime, received: bool = True
) -> bytes:
    """``Return-Path`` and (with ``received``) two ``Received`` fields, CRLF-terminated.

    Args:
        sender: The envelope sender (already a valid address).
        recipient: The mailbox it was delivered to.
        hostname: Our host name, the receiving side.
        when: The delivery time (time-zone aware).
        received: Add the ``Received`` chain.
    """
    lines = [f"Return-Path: <{sender}>"]
    if received:
        domain = sender.rpartition("@")[2] or "localhost"
        stamp = format_datetime(when)
        relay = f"mail.{domain}"
        lines += [
            f"Received: from {relay} ({relay} [{_DOCUMENTATION_IP}])\r\n"
            f"\tby {hostname} with ESMTPS id {secrets.token_hex(6).upper()}\r\n"
            f"\tfor <{recipient}>; {stamp}",
            f"Received: from localhost (localhost [127.0.0.1])\r\n"
            f"\tby {relay} with ESMTPSA id {secrets.token_hex(6).upper()}; {stamp}",
        ]
    return ("\r\n".join(lines) + "\r\n").encode("ascii", "replace")
