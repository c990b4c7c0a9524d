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

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from json.encoder import encode_basestring_ascii


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

    def encoded(self, delivered_to: Sequence[str]) -> str:
        """The JSON object stored with one copy (:func:`read_envelope` reads it back).

        Built from C-encoded strings: ``json.dumps`` of a dict took about
        8 us a message here, on the SMTP hot path.
        """
        auth = "null" if self.auth is None else _string(self.auth)
        return (
            f'{{"mail_from":{_string(self.mail_from)},"rcpt_to":{_list(self.rcpt_to)},'
            f'"delivered_to":{_list(delivered_to)},"client_ip":{_string(self.client_ip)},'
            f'"helo":{_string(self.helo)},"tls":{"true" if self.tls else "false"},'
            f'"auth":{auth},"listener":{_string(self.listener)},'
            f'"id":{_string(self.transaction_id)}}}'
        )


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


def _string(text: str) -> str:
    return str(encode_basestring_ascii(text))


def _list(texts: Iterable[str]) -> str:
    return "[" + ",".join(map(_string, texts)) + "]"


def _strings(value: object) -> tuple[str, ...]:
    return tuple(str(item) for item in value) if isinstance(value, list) else ()
