"""IMAP LOGIN and AUTHENTICATE against mailbox credentials (pymap's login interfaces).

Credentials are a mailbox address and its password, or the master login
``<address>*<admin username>`` with that admin's password, checked by
``store.mailboxes.check_password`` (Argon2; an unknown address costs the same
time), the one check POP3 and SMTP AUTH use too, behind the login limiter
they share (``NO [UNAVAILABLE]`` once a client used up its guesses). pysasl parses LOGIN and
AUTHENTICATE PLAIN/LOGIN (RFC 3501 sections 6.2.2 and 6.2.3, RFC 4616) and
hands the secret to our identity object.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from typing import NoReturn

from pymap.context import socket_info
from pymap.exceptions import AuthorizationFailure, InvalidAuth, NotSupportedError
from pymap.interfaces.login import IdentityInterface, LoginInterface
from pymap.interfaces.token import TokenCredentials, TokensInterface
from pymap.parsing.response import ResponseCode, ResponseNo
from pymap.user import UserMetadata
from pysasl.creds.server import ServerCredentials

from mailcue_server.errors import RateLimited
from mailcue_server.store import mailboxes as mailbox_store
from mailcue_server.store.login_limiter import LoginLimiter
from mailcue_server.workers.imap.backend import Session
from mailcue_server.workers.imap.config import ImapConfig

log = logging.getLogger(__name__)


class LoginLimited(InvalidAuth):
    """Too many failed guesses for that name from this client: nothing was checked.

    ``NO [UNAVAILABLE]`` (RFC 5530 section 3): a temporary refusal a client
    should not read as a wrong password.
    """

    def __init__(self) -> None:
        super().__init__("Too many failed logins from your address; try again later.")

    def get_response(self, tag: bytes) -> ResponseNo:
        return ResponseNo(tag, self._raw, ResponseCode.of(b"UNAVAILABLE"))


def _client_ip() -> str:
    """The connection's peer address (pymap keeps the socket per connection task)."""
    try:
        peer = socket_info.get().peername
    except LookupError:
        return ""
    return str(peer[0]) if isinstance(peer, tuple) and peer else ""


class Login(LoginInterface):
    """Checks mailbox credentials against the store, behind the shared login limiter."""

    def __init__(self, config: ImapConfig, limiter: LoginLimiter) -> None:
        self._config = config
        self._limiter = limiter
        self._tokens = _NoTokens()

    @property
    def tokens(self) -> TokensInterface:
        return self._tokens

    async def authenticate(self, credentials: ServerCredentials) -> Identity:
        capture = _SecretCapture(credentials.authcid)
        credentials.verify(capture)  # pysasl passes the secret to compare_secret
        if capture.secret is None:
            raise InvalidAuth()
        try:
            mailbox = await mailbox_store.check_login(
                credentials.authcid,
                capture.secret,
                limiter=self._limiter,
                client_ip=_client_ip(),
            )
        except RateLimited:
            log.info("IMAP login refused for %r: too many failures", credentials.authcid)
            raise LoginLimited() from None
        if mailbox is None:
            log.info("IMAP login failed for %r", credentials.authcid)
            raise InvalidAuth()
        return Identity(mailbox.address, self._config, login=credentials.authcid)

    async def authorize(self, authenticated: IdentityInterface, authzid: str) -> Identity:
        """The session's mailbox; an authzid, when given, must name it (or be the login).

        pysasl fills an absent authzid with the login, which for a master login
        (``<address>*<admin>``) is not the mailbox's address.
        """
        if not isinstance(authenticated, Identity):
            raise AuthorizationFailure()
        if not authzid or authzid == authenticated.login:
            return authenticated
        if mailbox_store.normalise_address(authzid) != authenticated.name:
            raise AuthorizationFailure()
        return authenticated


class _SecretCapture:
    """A pysasl identity that records the secret instead of comparing it.

    pysasl's ``verify`` is synchronous, but our check is an async Argon2 call:
    take the secret here, then check it against the store.
    """

    def __init__(self, authcid: str) -> None:
        self.authcid = authcid
        self.secret: str | None = None

    def compare_authcid(self, authcid: str) -> bool:
        return authcid == self.authcid

    def compare_secret(self, secret: str) -> bool:
        self.secret = secret
        return True

    def get_clear_secret(self) -> None:
        return None


class _NoTokens(TokensInterface):
    """Bearer tokens are not offered over IMAP."""

    def get_login_token(
        self,
        identifier: str,
        authcid: str,
        key: bytes,
        *,
        authzid: str | None = None,
        location: str | None = None,
        expiration: datetime | None = None,
    ) -> None:
        return None

    def get_admin_token(
        self,
        admin_key: bytes | None,
        *,
        authzid: str | None = None,
        location: str | None = None,
        expiration: datetime | None = None,
    ) -> None:
        return None

    def parse(self, authzid: str, token: str, *, admin_keys: object = None) -> TokenCredentials:
        raise ValueError("tokens are not supported")


class Identity(IdentityInterface):
    """A logged-in mailbox."""

    def __init__(self, address: str, config: ImapConfig, *, login: str = "") -> None:
        self._address = address
        self._config = config
        self.login = login or address  # as typed: the address, or a master login

    @property
    def name(self) -> str:
        return self._address

    @property
    def roles(self) -> frozenset[str]:
        return frozenset()

    @asynccontextmanager
    async def new_session(self) -> AsyncIterator[Session]:
        yield Session(self._address, self._config)

    async def new_token(self, *, expiration: datetime | None = None) -> None:
        return None

    async def get(self) -> NoReturn:
        raise NotSupportedError()

    async def set(self, metadata: UserMetadata) -> NoReturn:
        raise NotSupportedError()

    async def delete(self) -> NoReturn:
        raise NotSupportedError()
