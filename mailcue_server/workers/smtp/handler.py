"""The aiosmtpd handler: turns SMTP transactions into calls on the :class:`Sink`.

It owns the per-transaction policy that is about the wire, not the mailbox:
AUTH before MAIL on submission, SMTPUTF8 address rules, the bare CR/LF
(SMTP smuggling) check, the ``Received`` header and the reply for each
outcome. Every hook returns an SMTP status string (aiosmtpd
``docs/handlers.rst``); which recipients exist is the sink's business.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import itertools
import logging
import secrets
from collections.abc import Iterator
from datetime import UTC, datetime

from aiosmtpd.smtp import SMTP, AuthResult, Envelope, Session

from mailcue_server.errors import Invalid, RateLimited
from mailcue_server.mail.addresses import canonical_address
from mailcue_server.mail.header_limits import Breach, content_refusal
from mailcue_server.workers.smtp.dsn import dsn_request_of
from mailcue_server.workers.smtp.received import received_header, with_protocol
from mailcue_server.workers.smtp.sink import Delivery, ListenerKind, RecipientVerdict, Sink

log = logging.getLogger(__name__)

MAX_RECIPIENTS = 1000
"""RFC 5321 section 4.5.3.1.8 asks for at least 100; more than this is abuse."""

# RFC 3463 enhanced codes; RFC 5321 section 4.2.3 for the basic ones.
REPLY_MAIL_OK = "250 2.1.0 OK"
REPLY_RCPT_OK = "250 2.1.5 OK"
REPLY_AUTH_REQUIRED = "530 5.7.0 Authentication required"  # RFC 4954 section 6
REPLY_NON_ASCII = "553 5.6.7 Non-ASCII address needs SMTPUTF8"  # RFC 6531 section 3.5
REPLY_NOT_YOUR_ADDRESS = "553 5.7.1 Sender address not owned by the authenticated user"
REPLY_TOO_MANY_RCPTS = "452 4.5.3 Too many recipients"
REPLY_BAD_RCPT_SYNTAX = "501 5.1.3 Bad recipient address syntax"  # RFC 3463 X.1.3
REPLY_UNKNOWN_USER = "550 5.1.1 No such user here"
REPLY_RELAY_DENIED = "550 5.7.1 Relaying denied"
REPLY_BARE_NEWLINE = "550 5.6.0 Message contains a bare CR or LF; use CRLF line endings"
# RFC 2045 section 2.8 (no NUL in 8bit data; BINARYMIME is not offered) and
# mail/header_limits.py for the header limits, whose replies name the limit.
_CONTENT_REFUSALS = {Breach.NUL: "554 5.6.0", Breach.FIELDS: "552 5.3.4", Breach.SIZE: "552 5.3.4"}
REPLY_TRY_LATER = "451 4.3.0 Temporary server error, try again later"
# RFC 4954 section 6: a temporary authentication failure; the password was not checked.
REPLY_AUTH_LIMITED = "454 4.7.0 Too many failed logins from your address; try again later"

_REJECTIONS = {
    RecipientVerdict.UNKNOWN_USER: REPLY_UNKNOWN_USER,
    RecipientVerdict.RELAY_DENIED: REPLY_RELAY_DENIED,
}
_LOGIN_CHALLENGES = ("Username:", "Password:")  # draft-murchison-sasl-login


class _InFlight:
    """Counts work that a graceful shutdown must wait for."""

    def __init__(self) -> None:
        self._count = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._tasks: set[asyncio.Task[bool]] = set()

    def __enter__(self) -> None:
        """Hold the shutdown while a block runs (a class, not a generator: it is per message)."""
        self._count += 1
        self._idle.clear()

    def __exit__(self, *exc_info: object) -> None:
        self._release()

    def track(self, task: asyncio.Task[bool]) -> None:
        # Holding a strong reference keeps a shielded task alive after its
        # connection is gone (the loop itself only keeps weak ones).
        self._count += 1
        self._idle.clear()
        self._tasks.add(task)
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[bool]) -> None:
        self._tasks.discard(task)
        self._release()

    def _release(self) -> None:
        self._count -= 1
        if not self._count:
            self._idle.set()

    async def wait_idle(self) -> None:
        await self._idle.wait()


def has_bare_newline(content: bytes) -> bool:
    """Whether a CR or LF appears other than in a CRLF pair.

    RFC 5321 section 2.3.8: CR and LF only ever appear together as CRLF.
    aiosmtpd splits DATA on CRLF only, so a lone CR or LF survives inside the
    content; left alone, a downstream MTA that ends lines on bare LF could
    read a second, smuggled message out of it (CVE-2023-51764,
    https://smtpsmuggling.com). Every CR begins a CRLF and every LF ends one
    exactly when the three counts agree; counting is about ten times cheaper
    than a regular expression with lookarounds on the hot path.
    """
    pairs = content.count(b"\r\n")
    return content.count(b"\r") != pairs or content.count(b"\n") != pairs


def transaction_ids() -> Iterator[str]:
    """Ids for our ``Received`` headers: a random prefix per listener and a counter.

    Unique across restarts and nodes by the prefix; a counter instead of
    random bytes per message spares the SMTP hot path a system call.
    """
    prefix = secrets.token_hex(4).upper()
    for number in itertools.count(1):
        yield f"{prefix}{number:08X}"


def _identity(session: Session) -> str | None:
    data = session.auth_data
    return data if session.authenticated and isinstance(data, str) else None


def _reverse_path(address: str) -> str:
    """The MAIL FROM address, ``""`` for the null sender ``<>`` (RFC 5321 section 4.5.5)."""
    return "" if address == "<>" else address


def _is_address(address: str) -> bool:
    """Whether a ``RCPT TO`` path is a mailbox address (``local@domain``) we can deliver to."""
    try:
        canonical_address(address)
    except Invalid:
        return False
    return True


def _peer_ip(session: Session | None) -> str:
    peer = session.peer if session is not None else None
    if isinstance(peer, tuple) and peer:
        return str(peer[0])
    return "unknown"


class SmtpHandler:
    """aiosmtpd hooks for one listener.

    Args:
        sink: Where accepted mail, recipient checks and AUTH go.
        kind: The listener kind; LMTP gets one reply per recipient (RFC 2033
            section 4.2), submission and SMTPS offer AUTH.
        implicit_tls: The listener wraps every connection in TLS (RFC 8314).
        require_auth: Refuse ``MAIL`` until the client has authenticated.
    """

    def __init__(
        self,
        sink: Sink,
        *,
        kind: ListenerKind,
        implicit_tls: bool,
        require_auth: bool,
        postmaster_domain: str = "localhost",
    ) -> None:
        self._sink = sink
        self._postmaster = f"postmaster@{postmaster_domain}"
        self._transaction_ids = transaction_ids()
        self._kind = kind
        self._implicit_tls = implicit_tls
        self._require_auth = require_auth
        self._inflight = _InFlight()

    @property
    def offers_auth(self) -> bool:
        """AUTH is for submission (RFC 6409) and SMTPS (RFC 8314) only."""
        return self._kind in (ListenerKind.SUBMISSION, ListenerKind.SMTPS)

    async def drain(self) -> None:
        """Wait until no DATA transaction or delivery is in progress."""
        await self._inflight.wait_idle()

    async def handle_EHLO(  # noqa: N802 - aiosmtpd looks hooks up by this name
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        hostname: str,
        responses: list[str],
    ) -> list[str]:
        """Advertise PIPELINING and ENHANCEDSTATUSCODES (RFC 2920, RFC 2034)."""
        session.host_name = hostname
        *head, last = responses
        if not self.offers_auth:
            head = [line for line in head if not line.startswith("250-AUTH")]
        return [*head, "250-PIPELINING", "250-ENHANCEDSTATUSCODES", last]

    async def handle_MAIL(  # noqa: N802 - aiosmtpd looks hooks up by this name
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        mail_options: list[str],
    ) -> str:
        """Start a transaction once AUTH, SMTPUTF8 and sender-ownership rules are met."""
        if self._require_auth and not session.authenticated:
            return REPLY_AUTH_REQUIRED
        if not envelope.smtp_utf8 and not address.isascii():
            return REPLY_NON_ASCII
        identity = _identity(session)
        if identity is not None and not await self._sink.check_sender(
            _reverse_path(address), authenticated=identity
        ):
            return REPLY_NOT_YOUR_ADDRESS
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return REPLY_MAIL_OK

    async def handle_RCPT(  # noqa: N802 - aiosmtpd looks hooks up by this name
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        """Check the address's syntax, then ask the sink whether the recipient is accepted."""
        if not envelope.smtp_utf8 and not address.isascii():
            return REPLY_NON_ASCII
        if address.lower() == "postmaster":
            # RFC 5321 section 4.5.1: <Postmaster> without a domain must be accepted.
            address = self._postmaster
        if not _is_address(address):
            # A syntax error is the client's to fix (501), not an unknown user (550).
            return REPLY_BAD_RCPT_SYNTAX
        if len(envelope.rcpt_tos) >= MAX_RECIPIENTS:
            return REPLY_TOO_MANY_RCPTS
        verdict = await self._sink.check_recipient(address, authenticated=_identity(session))
        if verdict is not RecipientVerdict.ACCEPT:
            return _REJECTIONS[verdict]
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return REPLY_RCPT_OK

    async def handle_DATA(  # noqa: N802 - aiosmtpd looks hooks up by this name
        self, server: SMTP, session: Session, envelope: Envelope
    ) -> str:
        """Check the content, prepend ``Received`` and deliver.

        Returns:
            One reply, or for LMTP one line per recipient joined by CRLF.
        """
        with self._inflight:
            content = envelope.original_content or b""
            if has_bare_newline(content):
                log.warning("rejected DATA with bare CR/LF from %s", _peer_ip(session))
                return REPLY_BARE_NEWLINE
            refusal = content_refusal(content)
            if refusal is not None:
                log.warning("refused DATA from %s: %s", _peer_ip(session), refusal.text)
                return f"{_CONTENT_REFUSALS[refusal.breach]} {refusal.text}"
            txn_id = next(self._transaction_ids)
            if self._kind is ListenerKind.LMTP:
                replies = [
                    await self._deliver(server, session, envelope, txn_id, (rcpt,))
                    for rcpt in envelope.rcpt_tos
                ]
                return "\r\n".join(replies)
            rcpts = tuple(envelope.rcpt_tos)
            return await self._deliver(server, session, envelope, txn_id, rcpts)

    async def handle_exception(self, error: Exception) -> str:
        """Log the failure and answer without revealing it (STYLE rule 21)."""
        log.error("SMTP session error on the %s listener", self._kind, exc_info=error)
        return REPLY_TRY_LATER

    async def _deliver(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        txn_id: str,
        rcpts: tuple[str, ...],
    ) -> str:
        delivery = self._delivery(server, session, envelope, txn_id, rcpts)
        task = asyncio.get_running_loop().create_task(self._store(delivery, txn_id))
        self._inflight.track(task)
        # A client that hangs up after the final dot must not cancel a commit
        # half-way: the store finishes, the client retries, at worst a duplicate.
        stored = await asyncio.shield(task)
        return f"250 2.0.0 OK id={txn_id}" if stored else REPLY_TRY_LATER

    def _delivery(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        txn_id: str,
        rcpts: tuple[str, ...],
    ) -> Delivery:
        identity = _identity(session)
        peer_ip = _peer_ip(session)
        tls = self._implicit_tls or session.ssl is not None
        protocol = with_protocol(
            lmtp=self._kind is ListenerKind.LMTP,
            extended=session.extended_smtp,
            tls=tls,
            authenticated=identity is not None,
            smtputf8=envelope.smtp_utf8,
        )
        header = received_header(
            helo=session.host_name,
            peer_ip=peer_ip,
            hostname=server.hostname,
            protocol=protocol,
            message_id=txn_id,
            recipient=rcpts[0] if len(rcpts) == 1 else None,
            now=datetime.now(UTC),
        )
        return Delivery(
            mail_from=_reverse_path(envelope.mail_from or ""),
            rcpt_tos=rcpts,
            raw=header + (envelope.original_content or b""),
            authenticated_as=identity,
            peer=peer_ip,
            listener=self._kind,
            smtputf8=envelope.smtp_utf8,
            helo=session.host_name or "",
            dsn=dsn_request_of(envelope),
            tls=tls,
            transaction_id=txn_id,
            envelope_rcpts=tuple(envelope.rcpt_tos) if self._kind is ListenerKind.LMTP else (),
        )

    async def _store(self, delivery: Delivery, txn_id: str) -> bool:
        try:
            await self._sink.deliver(delivery)
        except Exception:
            # The boundary of one delivery (STYLE rule 24): log it, answer 451.
            log.exception("delivery %s from %s failed", txn_id, delivery.peer)
            return False
        log.debug("delivered %s to %d recipient(s)", txn_id, len(delivery.rcpt_tos))
        return True

    async def auth_PLAIN(  # noqa: N802 - aiosmtpd looks hooks up by this name
        self, server: SMTP, args: list[str]
    ) -> AuthResult:
        """SASL PLAIN (RFC 4616): ``[authzid] NUL authcid NUL passwd``."""
        blob = await self._initial_response(server, args, "")
        if blob is None:
            return AuthResult(success=False, handled=True)
        parts = blob.split(b"\0")
        if len(parts) != 3:
            await server.push("501 5.5.2 Can't split auth value")
            return AuthResult(success=False, handled=True)
        authzid, authcid, password = parts
        if authzid and authzid != authcid:
            # Acting as another user (proxy authorisation) is not supported.
            return AuthResult(success=False, handled=False)
        return await self._check(server, authcid, password)

    async def auth_LOGIN(  # noqa: N802 - aiosmtpd looks hooks up by this name
        self, server: SMTP, args: list[str]
    ) -> AuthResult:
        """The de facto LOGIN mechanism (draft-murchison-sasl-login)."""
        username = await self._initial_response(server, args, _LOGIN_CHALLENGES[0])
        if username is None:
            return AuthResult(success=False, handled=True)
        password = await server.challenge_auth(_LOGIN_CHALLENGES[1])
        if not isinstance(password, bytes):
            return AuthResult(success=False, handled=True)
        return await self._check(server, username, password)

    async def _initial_response(
        self, server: SMTP, args: list[str], challenge: str
    ) -> bytes | None:
        """Return the client's first SASL response; ``None`` once a reply is sent."""
        if len(args) == 1:
            answer = await server.challenge_auth(challenge)
            return answer if isinstance(answer, bytes) else None
        if args[1] == "=":
            return b""  # RFC 4954 section 4: "=" is an empty initial response.
        try:
            return base64.b64decode(args[1], validate=True)
        except binascii.Error:
            await server.push("501 5.5.2 Can't decode base64")
            return None

    async def _check(self, server: SMTP, username: bytes, password: bytes) -> AuthResult:
        try:
            user, secret = username.decode(), password.decode()
        except UnicodeDecodeError:
            return AuthResult(success=False, handled=False)
        peer = _peer_ip(server.session)
        try:
            identity = await self._sink.authenticate(user, secret, client_ip=peer)
        except RateLimited:
            log.info("AUTH refused for %r from %s: too many failures", user, peer)
            await server.push(REPLY_AUTH_LIMITED)
            return AuthResult(success=False, handled=True)
        if identity is None:
            log.info("AUTH failed for %r from %s", user, peer)
            return AuthResult(success=False, handled=False)
        return AuthResult(success=True, auth_data=identity)
