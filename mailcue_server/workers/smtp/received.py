"""Builds the trace headers the SMTP worker prepends to each message.

Pure: strings and a timestamp in, bytes out. ``Received`` follows the
Time-stamp-line grammar of RFC 5321 section 4.4; its ``with`` keyword comes from
the registries of RFC 3848 (ESMTPS/ESMTPA/LMTP...) and RFC 6531 section 4.3
(UTF8SMTP...). ``Return-Path`` is the Return-path-line of the same section,
which the final delivery adds above everything else.
"""

from __future__ import annotations

import functools
import ipaddress
import re
from datetime import datetime
from email.utils import format_datetime

_MAX_HELO = 255
# Every character but domain and address-literal ones; each becomes "?".
_UNSAFE_HELO = re.compile(r"[^a-zA-Z0-9.\-_:\[\]]")
_CONTROLS = re.compile("[\x00-\x1f\x7f]")


def with_protocol(
    *, lmtp: bool, extended: bool, tls: bool, authenticated: bool, smtputf8: bool
) -> str:
    """Return the ``with`` protocol keyword for a transaction.

    Args:
        lmtp: The message arrived over LMTP (RFC 2033).
        extended: The client greeted with EHLO/LHLO rather than HELO.
        tls: The session was encrypted (STARTTLS or implicit TLS).
        authenticated: The client completed SMTP AUTH.
        smtputf8: The transaction used the SMTPUTF8 parameter.

    Returns:
        For example ``"ESMTP"``, ``"ESMTPSA"``, ``"LMTP"`` or ``"UTF8SMTPS"``.
    """
    if not extended and not lmtp:
        # Plain HELO: no extension (TLS, AUTH, SMTPUTF8) can have been negotiated.
        return "SMTP"
    base = "LMTP" if lmtp else "SMTP"
    if smtputf8:
        base = "UTF8" + base
    elif not lmtp:
        base = "E" + base
    suffix = ("S" if tls else "") + ("A" if authenticated else "")
    return base + suffix


@functools.lru_cache(maxsize=1024)
def address_literal(ip: str) -> str:
    """Format a peer IP as an RFC 5321 section 4.1.3 address literal.

    Returns:
        ``"[192.0.2.1]"``, ``"[IPv6:2001:db8::1]"``, or ``"[unknown]"`` when
        ``ip`` is not an IP address (for example a Unix socket peer).
    """
    try:
        parsed = ipaddress.ip_address(ip)
    except ValueError:
        return "[unknown]"
    if isinstance(parsed, ipaddress.IPv6Address):
        if parsed.ipv4_mapped is not None:
            return f"[{parsed.ipv4_mapped}]"
        return f"[IPv6:{parsed.compressed}]"
    return f"[{parsed}]"


def clean_helo(helo: str | None) -> str:
    """Make the client's HELO/EHLO argument safe to put in a header.

    The argument is whatever the client sent; keep only domain and
    address-literal characters so it cannot break the header or fake a comment.
    """
    if not helo:
        return "unknown"
    return _UNSAFE_HELO.sub("?", helo[:_MAX_HELO])


def _no_controls(text: str) -> str:
    return _CONTROLS.sub("?", text)


@functools.lru_cache(maxsize=4)
def _date_time(when: datetime) -> str:
    """RFC 5322 date-time (whole seconds): the same for every message in one second."""
    return format_datetime(when)


@functools.lru_cache(maxsize=256)
def _from_clause(helo: str | None, peer_ip: str) -> str:
    """The first line; a connection sends it with every message, so remembered."""
    return f"Received: from {clean_helo(helo)} ({address_literal(peer_ip)})"


@functools.lru_cache(maxsize=32)
def _by_clause(hostname: str, protocol: str) -> str:
    return f"\tby {_no_controls(hostname)} with {protocol}"


def received_header(
    *,
    helo: str | None,
    peer_ip: str,
    hostname: str,
    protocol: str,
    message_id: str,
    recipient: str | None,
    now: datetime,
) -> bytes:
    """Build one folded ``Received`` header, ending in CRLF.

    Args:
        helo: The HELO/EHLO/LHLO argument the client gave.
        peer_ip: The client's IP address.
        hostname: Our host name (the ``by`` domain).
        protocol: The ``with`` keyword, see :func:`with_protocol`.
        message_id: Our identifier for this transaction (the ``id`` clause).
        recipient: Put in the ``for`` clause. RFC 5321 section 4.4 allows
            exactly one path there, so pass ``None`` when there are several.
        now: When the message was received; must be timezone-aware.

    Returns:
        The header as UTF-8 bytes (non-ASCII only appears in the ``for``
        clause of an SMTPUTF8 transaction, which RFC 6532 permits).
    """
    stamp = _date_time(now.replace(microsecond=0))
    lines = [
        _from_clause(helo, peer_ip),
        f"{_by_clause(hostname, protocol)} id {_no_controls(message_id)}",
    ]
    if recipient is None:
        lines[-1] += ";"
        lines.append(f"\t{stamp}")
    else:
        lines.append(f"\tfor <{_no_controls(recipient)}>; {stamp}")
    return ("\r\n".join(lines) + "\r\n").encode("utf-8", errors="surrogateescape")


@functools.lru_cache(maxsize=1024)
def return_path_header(mail_from: str) -> bytes:
    """Build the ``Return-Path`` header of a final delivery, ending in CRLF.

    Args:
        mail_from: The reverse-path without brackets; ``""`` for the null
            sender, which gives ``Return-Path: <>`` (RFC 5321 section 4.4).

    Returns:
        The header as UTF-8 bytes (an SMTPUTF8 sender may be non-ASCII, RFC 6532).
    """
    return f"Return-Path: <{_no_controls(mail_from)}>\r\n".encode(
        "utf-8", errors="surrogateescape"
    )
