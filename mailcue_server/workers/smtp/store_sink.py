"""The SMTP sink over the message store: recipient policy, credentials and delivery.

Test mode accepts any syntactically valid recipient (a mailbox is made on
first mail) while its catch-all is on, a live setting read per recipient;
with it off, only existing mailboxes and aliases, and every other address is
an unknown user (nothing leaves a test server, so every domain is ours).
Production mode accepts existing mailboxes and aliases of our domains, and,
from an authenticated sender only, remote recipients, which go to the
outbound queue. Aliases apply in both modes. Delivery goes through the
group-commit :class:`~mailcue_server.store.ingest.IngestQueue`, so ``deliver``
returns only after the message's transaction has committed (and a remote
copy has been queued).
"""

from __future__ import annotations

import asyncio
import hmac
import logging
from collections.abc import Callable
from dataclasses import dataclass

from mailcue_server.errors import Invalid
from mailcue_server.mail import dkim
from mailcue_server.mail.addresses import canonical_address
from mailcue_server.store import aliases, domains, mailboxes, outbound, senders, users
from mailcue_server.store.envelopes import SmtpEnvelope
from mailcue_server.store.ingest import Incoming, IngestQueue
from mailcue_server.store.login_limiter import DEFAULT_MAX_ATTEMPTS, DEFAULT_WINDOW, LoginLimiter
from mailcue_server.workers.smtp.received import return_path_header
from mailcue_server.workers.smtp.sink import Delivery, ListenerKind, RecipientVerdict

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class InboundAuth:
    """How received mail gets its SPF/DKIM/DMARC ``Authentication-Results``."""

    hostname: str
    nameserver: tuple[str, int] | None
    timeout: float


@dataclass(frozen=True, slots=True)
class OutboundRoute:
    """Where mail for remote recipients goes (production, or a relay).

    Attributes:
        dkim_secret: The server secret that opens the domains' DKIM keys, to
            sign what authenticated senders submit.
        wake: Tells the delivery worker there is new mail (else it polls).
    """

    dkim_secret: str
    wake: Callable[[], None] = lambda: None


class StoreSink:
    """Implements :class:`~mailcue_server.workers.smtp.sink.Sink` on our store.

    Args:
        queue: The running ingest queue that commits deliveries.
        accept_any_recipient: Test mode's catch-all, asked per recipient (live setting).
        test_mode: Senders are not checked and unknown recipients of any domain are
            unknown users, not relaying.
        api_credential: The username and password the HTTP API submits with
            (``POST /emails/send``); made per process, never stored.
        inbound_auth: Check received mail's origin; ``None`` turns it off.
        outbound: Queue mail for remote recipients; ``None`` keeps all mail local.
        limiter: The login limiter HTTP, IMAP and POP3 share (one per process);
            ``None`` makes one for this sink alone.
    """

    def __init__(
        self,
        queue: IngestQueue,
        *,
        accept_any_recipient: Callable[[], bool],
        test_mode: bool,
        api_credential: tuple[str, str] | None = None,
        inbound_auth: InboundAuth | None = None,
        outbound: OutboundRoute | None = None,
        limiter: LoginLimiter | None = None,
    ) -> None:
        self._queue = queue
        self._limiter = limiter or LoginLimiter(DEFAULT_MAX_ATTEMPTS, DEFAULT_WINDOW)
        self._catch_all = accept_any_recipient
        self._test_mode = test_mode
        self._api_credential = api_credential
        self._inbound_auth = inbound_auth
        self._outbound = outbound

    async def check_recipient(
        self, address: str, *, authenticated: str | None
    ) -> RecipientVerdict:
        try:
            canonical = canonical_address(address).lower()
        except Invalid:
            return RecipientVerdict.UNKNOWN_USER
        if self._catch_all():
            return RecipientVerdict.ACCEPT
        if await mailboxes.find_mailbox(canonical) is not None:
            return RecipientVerdict.ACCEPT
        if await aliases.has_alias(canonical):
            return RecipientVerdict.ACCEPT
        if await domains.is_managed(canonical.rpartition("@")[2]):
            return RecipientVerdict.UNKNOWN_USER
        if authenticated is not None and self._outbound is not None:
            return RecipientVerdict.ACCEPT  # submission to the world: the outbound queue
        if self._test_mode:
            return RecipientVerdict.UNKNOWN_USER  # catch-all off: every domain is ours
        return RecipientVerdict.RELAY_DENIED

    async def check_sender(self, address: str, *, authenticated: str) -> bool:
        """Production: users send only as their own addresses (test mode: as anyone).

        The API's own submitter is exempt: ``POST /emails/send`` has already
        checked that its caller may reach the sending mailbox.
        """
        if self._test_mode or self._is_api_user(authenticated):
            return True
        return await senders.may_send_as(authenticated, address)

    def _is_api_user(self, identity: str | None) -> bool:
        return self._api_credential is not None and identity == self._api_credential[0]

    async def deliver(self, envelope: Delivery) -> None:
        raw = envelope.raw
        if self._checks_origin(envelope):
            assert self._inbound_auth is not None  # noqa: S101 - checked just above
            raw = await self._authentication_results(envelope) + raw
        elif self._signs(envelope):
            raw = await self._dkim_signed(envelope.mail_from, raw)
        # Aliases apply in the queue: one lookup for a whole group commit, not
        # one per message (a query per message cost more than the rest of ingest).
        # The local copies are final deliveries, so they get Return-Path on top
        # (RFC 5321 section 4.4); a copy for the outbound queue is relayed, so not.
        result = await self._queue.submit(
            Incoming(
                raw=return_path_header(envelope.mail_from) + raw,
                recipients=envelope.rcpt_tos,
                mail_from=envelope.mail_from,
                source=str(envelope.listener),
                expand_aliases=True,
                envelope=self._envelope(envelope),
            )
        )
        remote = [a for a in result.unknown if not await domains.is_managed(_domain(a))]
        if remote and self._outbound is not None:
            await outbound.enqueue(raw, envelope.mail_from, remote, dsn=envelope.dsn)
            self._outbound.wake()

    def _envelope(self, delivery: Delivery) -> SmtpEnvelope:
        """What the stored copies keep of the transaction."""
        identity = delivery.authenticated_as
        return SmtpEnvelope(
            mail_from=delivery.mail_from,
            rcpt_to=delivery.envelope_rcpts or delivery.rcpt_tos,
            client_ip=delivery.peer,
            helo=delivery.helo,
            tls=delivery.tls,
            auth=senders.login_name(identity) if identity is not None else None,
            listener=str(delivery.listener),
            transaction_id=delivery.transaction_id,
        )

    def _checks_origin(self, envelope: Delivery) -> bool:
        """Mail from the world: the inbound port, unauthenticated."""
        return (
            self._inbound_auth is not None
            and envelope.listener is ListenerKind.SMTP
            and envelope.authenticated_as is None
        )

    def _signs(self, envelope: Delivery) -> bool:
        """Authenticated submissions are ours to sign; the API signs its own mail."""
        return (
            self._outbound is not None
            and envelope.authenticated_as is not None
            and not self._is_api_user(envelope.authenticated_as)
        )

    async def _authentication_results(self, envelope: Delivery) -> bytes:
        # SPF, DKIM and DMARC (and the public suffix list) load with the first message checked.
        from mailcue_server.workers.smtp.inbound_auth import authenticate as check_origin

        settings = self._inbound_auth
        assert settings is not None  # noqa: S101 - callers check
        return await check_origin(
            envelope.raw,
            peer_ip=envelope.peer,
            helo=envelope.helo,
            mail_from=envelope.mail_from,
            hostname=settings.hostname,
            nameserver=settings.nameserver,
            timeout=settings.timeout,
        )

    async def _dkim_signed(self, mail_from: str, raw: bytes) -> bytes:
        assert self._outbound is not None  # noqa: S101 - callers check
        key = await domains.signing_key(_domain(mail_from), self._outbound.dkim_secret)
        if key is None:
            return raw
        # dkimpy's RSA is pure Python (~8 ms a message): off the event loop.
        return await asyncio.to_thread(
            dkim.sign, raw, key.domain, key.selector, key.private_key_pem
        )

    async def authenticate(self, username: str, password: str, *, client_ip: str) -> str | None:
        """A mailbox login (its address, or ``<address>*<admin>``, see
        ``store.mailboxes.check_password``) or a user account that is not an
        administrator, with its password.

        An administrator's own name and password are refused here: that
        password opens the whole server, so it is for the API, and on SMTP only
        in a master login, which acts as one mailbox (``store.senders``).

        Returns:
            ``mailbox:<address>`` or ``user:<username>`` (see ``store.senders``),
            or the API submitter's own name.

        Raises:
            RateLimited: this client used up its guesses for that name (the
                limiter every protocol shares); no password was checked.
        """
        if self._api_credential is not None and username == self._api_credential[0]:
            # A 256-bit secret nobody can guess, used from loopback: not limited, so
            # guesses at it cannot lock the API's own submissions out.
            expected = self._api_credential[1].encode()
            return username if hmac.compare_digest(password.encode(), expected) else None
        return await self._limiter.attempt(
            client_ip,
            mailboxes.login_identity(username),
            password,
            lambda: self._check_login(username, password),
        )

    async def _check_login(self, username: str, password: str) -> str | None:
        if "@" in username:
            mailbox = await mailboxes.check_password(username, password)
            if mailbox is not None:
                return senders.mailbox_identity(mailbox.address)
        user = await users.check_password(username, password)
        if user is None or user.is_admin:
            return None
        return senders.user_identity(user.username)


def _domain(address: str) -> str:
    return address.rpartition("@")[2].lower()
