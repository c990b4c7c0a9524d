"""The storage interface the POP3 server needs, and nothing more.

The POP3 session (``session.py``) talks only to these Protocols, so it can be
driven by the real Tortoise-backed store or by an in-memory double in tests.
A maildrop here is one mailbox's INBOX as seen by one POP3 session: the
session takes a snapshot at login (RFC 1939 section 4 gives each message a
number that stays fixed for the whole session) and only writes back at QUIT.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

__all__ = ["Maildrop", "MaildropInUse", "MessageRef", "Pop3Backend"]


@dataclass(frozen=True, slots=True)
class MessageRef:
    """One message in a maildrop snapshot.

    Attributes:
        uid: The unique-id listing value (RFC 1939 section 7, UIDL): stable across
            sessions, unique within the maildrop, 1-70 printable ASCII characters
            (0x21-0x7E).
        size: Size in octets of the exact raw bytes ``Maildrop.read`` returns.
    """

    uid: str
    size: int


class MaildropInUse(Exception):
    """Raised by ``Pop3Backend.authenticate`` when the credentials are good but
    another session holds the maildrop lock (RFC 2449 section 8.1.1, ``[IN-USE]``)."""


class Maildrop(Protocol):
    """An authenticated, locked maildrop."""

    async def list_messages(self) -> Sequence[MessageRef]:
        """Return the messages present now, oldest first.

        Called once, right after login; the session keeps the result as its snapshot.
        """
        ...

    async def read(self, uid: str) -> bytes:
        """Return the message's exact stored bytes, with CRLF line endings.

        Raises:
            mailcue_server.errors.NotFound: The message was removed meanwhile.
        """
        ...

    async def delete(self, uids: Sequence[str]) -> None:
        """Remove these messages for good.

        Called at most once per session, at QUIT in the UPDATE state (RFC 1939
        section 6), with the uids the client marked with DELE. Never called when
        the connection drops without QUIT.
        """
        ...

    async def release(self) -> None:
        """Drop the maildrop lock. Called exactly once when the session ends."""
        ...


class Pop3Backend(Protocol):
    """Checks credentials and hands out maildrops."""

    async def authenticate(
        self, username: str, password: str, *, client_ip: str
    ) -> Maildrop | None:
        """Check a username and password and lock the user's maildrop.

        Implementations must do the same work for an unknown user as for a wrong
        password, so timing does not tell them apart.

        Args:
            username: As sent with USER or as the SASL PLAIN authcid.
            password: As sent with PASS or in SASL PLAIN.
            client_ip: The client's address, which failed guesses are counted for.

        Returns:
            The locked maildrop, or None when the credentials are wrong.

        Raises:
            MaildropInUse: The credentials are good but the maildrop is locked.
            mailcue_server.errors.RateLimited: Too many failed guesses for that
                name from this client; the password was not checked.
        """
        ...
