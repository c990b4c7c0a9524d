"""The SMTP envelope kept with each message delivered over SMTP or LMTP.

The envelope (RFC 5321 section 3.3: MAIL FROM, the RCPT TO list) and the
session around it (client address, HELO, TLS, AUTH) are not part of the
message's bytes; only the reverse-path is, as the ``Return-Path`` the final
delivery adds. So they are a column of their own, one JSON object per stored
copy, written by the same INSERT as the message (``store/ingest.py``). Mail
stored by IMAP APPEND or the API's inject never had an envelope: NULL.

Each copy also records which of the RCPT addresses led to it (``delivered_to``,
an alias's address included), as a delivery agent's ``Delivered-To`` does:
the whole list would tell every recipient who else got the message, Bcc
recipients included, so readers other than administrators are shown only that
part (``resolvers/emails.py``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class SmtpEnvelope:
    """One SMTP/LMTP transaction, as the server saw it.

    Attributes:
        mail_from: The reverse-path, ``""`` for the null sender ``<>``.
        rcpt_to: Every accepted recipient, as the client wrote it, in ``RCPT`` order.
        client_ip: The client's IP address.
        helo: The name the client greeted with (HELO/EHLO/LHLO).
        tls: Whether the session was encrypted (STARTTLS or implicit TLS).
        auth: The name the client authenticated as, if it did (SMTP AUTH).
        listener: ``smtp``, ``submission``, ``smtps`` or ``lmtp``.
        transaction_id: Our id of the transaction (the ``Received`` header's ``id``).
        delivered_to: The recipients (of ``rcpt_to``) that led to this copy;
            empty until the copy is stored.
    """

    mail_from: str
    rcpt_to: tuple[str, ...]
    client_ip: str
    helo: str
    tls: bool
    auth: str | None
    listener: str
    transaction_id: str = ""
    delivered_to: tuple[str, ...] = ()

    def row(self, delivered_to: Sequence[str]) -> dict[str, Any]:
        """The JSON value stored with one copy."""
        return {
            "mail_from": self.mail_from,
            "rcpt_to": list(self.rcpt_to),
            "delivered_to": list(delivered_to),
            "client_ip": self.client_ip,
            "helo": self.helo,
            "tls": self.tls,
            "auth": self.auth,
            "listener": self.listener,
            "id": self.transaction_id,
        }


def read_envelope(value: object) -> SmtpEnvelope | None:
    """The envelope stored with a copy; ``None`` for mail that had none.

    Tolerant of a missing key (an older row, or a value written by hand).
    """
    if not isinstance(value, dict):
        return None
    return SmtpEnvelope(
        mail_from=str(value.get("mail_from") or ""),
        rcpt_to=_strings(value.get("rcpt_to")),
        client_ip=str(value.get("client_ip") or ""),
        helo=str(value.get("helo") or ""),
        tls=bool(value.get("tls")),
        auth=None if value.get("auth") is None else str(value["auth"]),
        listener=str(value.get("listener") or ""),
        transaction_id=str(value.get("id") or ""),
        delivered_to=_strings(value.get("delivered_to")),
    )


def _strings(value: object) -> tuple[str, ...]:
    return tuple(str(item) for item in value) if isinstance(value, list) else ()
