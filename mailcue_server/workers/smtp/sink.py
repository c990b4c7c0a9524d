"""The seam the SMTP worker delivers into: the sink Protocol and its value types.

The SMTP server owns the wire; whatever implements :class:`Sink` owns policy
(which recipients are ours, who may relay), credentials and storage. Test mode
accepts every recipient, production mode checks managed domains: both live
behind this Protocol, never in the handler. Nothing here speaks SMTP codes
(STYLE rule 23): the handler maps :class:`RecipientVerdict` to replies.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from mailcue_server.mail.dsn_params import DsnRequest


class ListenerKind(StrEnum):
    """Which door a message came in through."""

    SMTP = "smtp"
    SUBMISSION = "submission"
    SMTPS = "smtps"
    LMTP = "lmtp"


class RecipientVerdict(StrEnum):
    """The sink's answer to one ``RCPT TO``: accept, or why not."""

    ACCEPT = "accept"
    UNKNOWN_USER = "unknown_user"
    RELAY_DENIED = "relay_denied"


@dataclass(frozen=True, slots=True)
class Delivery:
    """One accepted message, ready to store.

    Attributes:
        mail_from: The reverse-path; ``""`` for the null sender ``<>``
            (RFC 5321 section 4.5.5).
        rcpt_tos: Accepted recipients, in ``RCPT`` order.
        raw: Our ``Received`` header followed by the DATA bytes exactly as
            received after dot-unstuffing (RFC 5321 section 4.5.2).
        authenticated_as: The identity from :meth:`Sink.authenticate`, if any.
        peer: The client's IP address.
        listener: The listener the message arrived on.
        smtputf8: Whether the client used ``MAIL FROM ... SMTPUTF8`` (RFC 6531).
        helo: The name the client greeted with (SPF checks it for the null sender).
        dsn: RFC 3461 parameters (RET, ENVID, NOTIFY, ORCPT), if the client gave any.
        tls: Whether the session was encrypted (STARTTLS or implicit TLS).
        transaction_id: Our id of the transaction (the ``Received`` header's ``id``).
        envelope_rcpts: Every recipient the transaction accepted, in ``RCPT``
            order; differs from ``rcpt_tos`` for LMTP, which delivers to each
            recipient on its own (RFC 2033 section 4.2). Empty means ``rcpt_tos``.
    """

    mail_from: str
    rcpt_tos: tuple[str, ...]
    raw: bytes
    authenticated_as: str | None
    peer: str
    listener: ListenerKind
    smtputf8: bool
    helo: str = ""
    dsn: DsnRequest | None = None
    tls: bool = False
    transaction_id: str = ""
    envelope_rcpts: tuple[str, ...] = ()


class Sink(Protocol):
    """What the SMTP server needs from the rest of the application."""

    async def check_recipient(
        self, address: str, *, authenticated: str | None
    ) -> RecipientVerdict:
        """Decide whether ``RCPT TO:<address>`` is accepted.

        Args:
            address: The recipient as the client wrote it (no angle brackets).
            authenticated: The session's identity, or ``None`` when anonymous.

        Returns:
            ``ACCEPT``, or the kind of rejection.
        """
        ...

    async def check_sender(self, address: str, *, authenticated: str) -> bool:
        """Decide whether an authenticated client may use ``MAIL FROM:<address>``.

        Args:
            address: The reverse-path as written (``""`` for the null sender).
            authenticated: The session's identity from :meth:`authenticate`.

        Returns:
            Whether the identity may send as that address.
        """
        ...

    async def deliver(self, envelope: Delivery) -> None:
        """Store the message durably.

        The server answers ``250`` only after this returns, so it must commit
        before returning (DESIGN "Mail model": 250 means durable). The call is
        shielded from client disconnects, so it runs to completion.

        Raises:
            Exception: Any failure; the client gets a generic ``451 4.3.0``.
        """
        ...

    async def authenticate(self, username: str, password: str, *, client_ip: str) -> str | None:
        """Check SMTP AUTH credentials (RFC 4954).

        Args:
            username: The authentication identity the client gave.
            password: Its password.
            client_ip: The client's address, which guesses are counted for.

        Returns:
            The canonical identity (for example the mailbox address), or ``None``.

        Raises:
            mailcue_server.errors.RateLimited: Too many failed guesses for that
                name from this client; the password was not checked.
        """
        ...
