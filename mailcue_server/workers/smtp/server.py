"""SMTP, submission, SMTPS and LMTP listeners on the application's event loop.

This module owns the sockets and aiosmtpd's protocol objects: which listener
speaks what (TLS mode, AUTH), RFC 2034 enhanced status codes on every reply,
LMTP's one-reply-per-recipient rule, the idle timeout (421), and a graceful
shutdown. It uses ``loop.create_server`` (through the connection gate,
``workers/gate.py``, which counts connections and does implicit TLS) with
aiosmtpd protocol factories, never the threaded ``Controller`` (STYLE rule
20): the sink's database and Redis connections belong to this loop.
"""

from __future__ import annotations

import asyncio
import collections
import functools
import logging
import re
import ssl
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from aiosmtpd.lmtp import LMTP
from aiosmtpd.smtp import MISSING, SMTP, syntax

from mailcue_server.errors import ConfigError, ListenerUnavailable
from mailcue_server.workers.connections import ConnectionCaps, Ticket
from mailcue_server.workers.gate import Gate
from mailcue_server.workers.limits import Limit, current
from mailcue_server.workers.smtp.data import read_data
from mailcue_server.workers.smtp.dsn import DsnCommands
from mailcue_server.workers.smtp.handler import REPLY_BAD_RCPT_SYNTAX, SmtpHandler
from mailcue_server.workers.smtp.sink import ListenerKind, Sink

log = logging.getLogger(__name__)

DEFAULT_MAX_MESSAGE_SIZE = 25 * 1024 * 1024
DEFAULT_IDLE_TIMEOUT = 300.0  # RFC 5321 section 4.5.3.2.7: at least five minutes
_CLOSE_TIMEOUT = 5.0
_SHUTTING_DOWN = b"421 4.3.2 Service shutting down\r\n"  # RFC 5321 section 3.8
_TOO_MANY = b"421 4.7.0 Too many connections\r\n"
_TIMED_OUT = b"421 4.4.2 Idle for too long, closing connection\r\n"
# No command's syntax has a NUL (RFC 5321 section 4.1.2); an address or name with
# one would reach logs, the envelope and other servers cut short or refused.
_NUL_IN_COMMAND = "501 5.5.2 Syntax error: NUL character in command"
# Seconds an SMTPS client may take for its TLS handshake.
_HANDSHAKE_TIMEOUT = 60.0

# RFC 3463 class.subject.detail, already present at the start of a reply's text.
_HAS_ENHANCED = re.compile(r"[245]\.\d{1,3}\.\d{1,3}(?: |$)")
# Codes for aiosmtpd's own replies, which carry none (RFC 3463 section 3.6).
_ENHANCED_BY_CODE = {
    "500": "5.5.2",
    "501": "5.5.4",
    "502": "5.5.1",
    "503": "5.5.1",
    "504": "5.5.4",
    "530": "5.7.0",
    "552": "5.3.4",
    "554": "5.7.0",
    "555": "5.5.4",
    "454": "4.7.0",
}
_UNKNOWN_COMMAND = '500 Error: command "'
_MALFORMED_ADDRESS = "553 5.1.3 Error: malformed address"  # aiosmtpd's, for MAIL and RCPT
# RFC 5321 section 4.1.2: the Path nearly every client sends, "<dot-atom@domain>"
# (RFC 5322 atext). aiosmtpd hands every path to the email package's header
# parser (about 12 us a call here); for this form that parser returns the text
# between the brackets unchanged, so it can be read directly.
_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_PLAIN_PATH = re.compile(rf"<({_ATOM}(?:\.{_ATOM})*)@([A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*)>")


class TlsMode(StrEnum):
    """How a listener uses TLS."""

    NONE = "none"
    STARTTLS = "starttls"  # RFC 3207
    IMPLICIT = "implicit"  # RFC 8314 section 3.3


@dataclass(frozen=True, slots=True, kw_only=True)
class Listener:
    """One listening socket and the rules of the protocol spoken on it.

    Attributes:
        kind: What the port is for; AUTH is offered on submission and SMTPS.
        host: The address to bind.
        port: The port to bind; ``0`` picks a free one.
        tls: No TLS, STARTTLS, or TLS from the first byte.
        require_auth: Refuse ``MAIL`` with 530 until AUTH succeeded.
        allow_plaintext_auth: Offer AUTH before TLS (tests and trusted LANs).
    """

    kind: ListenerKind
    host: str = "127.0.0.1"
    port: int = 0
    tls: TlsMode = TlsMode.NONE
    require_auth: bool = False
    allow_plaintext_auth: bool = False

    def __post_init__(self) -> None:
        if self.kind is ListenerKind.SMTPS and self.tls is not TlsMode.IMPLICIT:
            raise ConfigError("the smtps listener needs tls=implicit")
        offers_auth = self.kind in (ListenerKind.SUBMISSION, ListenerKind.SMTPS)
        if (self.require_auth or self.allow_plaintext_auth) and not offers_auth:
            raise ConfigError(f"the {self.kind} listener does not offer AUTH")


def enhance_reply(line: str) -> str:
    """Add an RFC 2034 enhanced status code to one reply line lacking it.

    Args:
        line: A reply line such as ``"503 Error: need RCPT command"``.

    Returns:
        The line with a code inserted (``"503 5.5.1 Error: ..."``), or unchanged
        when it already has one, is a continuation line or is a 3xx reply.
    """
    code, sep, text = line[:3], line[3:4], line[4:]
    if not code.isdigit() or sep != " " or code[0] not in "245" or _HAS_ENHANCED.match(text):
        return line
    if line.startswith(_UNKNOWN_COMMAND):
        enhanced = "5.5.1"
    else:
        enhanced = _ENHANCED_BY_CODE.get(code, f"{code[0]}.0.0")
    return f"{code} {enhanced} {text}"


class _DropLoginDataWarning(logging.Filter):
    """aiosmtpd 1.4's own smtp_AUTH sets the deprecated ``Session.login_data``
    and so logs a warning on every successful AUTH; nothing a handler does avoids it."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Session.login_data is deprecated")


def _quiet_login_data_warning() -> None:
    logger = logging.getLogger("mail.log")  # aiosmtpd's logger
    if not any(isinstance(f, _DropLoginDataWarning) for f in logger.filters):
        logger.addFilter(_DropLoginDataWarning())


class _MailcueSMTP(DsnCommands, SMTP):
    """aiosmtpd's SMTP with enhanced status codes, shutdown support, a faster DATA and
    RFC 3461 parameters (``dsn.py``)."""

    # aiosmtpd sizes its stream's limit (and so its read-ahead) by this, which it
    # documents setting to 2**16. smtp_DATA below accepts longer DATA lines
    # (data.py); command lines are held by aiosmtpd's command_size_limits.
    line_length_limit = 2**16

    def __init__(
        self,
        handler: SmtpHandler,
        *,
        connections: set[_MailcueSMTP],
        ticket: Ticket | None = None,
        **options: Any,
    ) -> None:
        # aiosmtpd keeps command_size_limits on the class and grows it on every
        # EHLO; one dict per connection keeps sessions from widening each other's.
        self.command_size_limits = collections.defaultdict(lambda: SMTP.command_size_limit)
        super().__init__(handler, **options)
        self._smtp_methods = {
            name: self._refusing_nul(method) for name, method in self._smtp_methods.items()
        }
        self._connections = connections
        self._ticket = ticket
        self._greeted = False
        self._verbatim = False
        self._in_rcpt = False
        self.lost: asyncio.Future[None] = self.loop.create_future()

    def _refusing_nul(
        self, method: Callable[[str | None], Awaitable[None]]
    ) -> Callable[[str | None], Awaitable[None]]:
        """``method`` (aiosmtpd's ``smtp_<VERB>``), answering 501 to arguments holding a NUL."""

        @functools.wraps(method)  # HELP reads the syntax aiosmtpd's @syntax put on it
        async def checked(arg: str | None) -> None:
            if arg is not None and "\0" in arg:
                await self.push(_NUL_IN_COMMAND)
                return
            await method(arg)

        return checked

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._connections.add(self)

    def connection_lost(self, error: Exception | None) -> None:
        self._connections.discard(self)
        if self._ticket is not None:
            self._ticket.release()
        try:
            super().connection_lost(error)
        finally:
            if not self.lost.done():
                self.lost.set_result(None)

    def _timeout_cb(self) -> None:
        # aiosmtpd hangs up without a word; RFC 5321 section 3.8 asks for a 421 first.
        if self.transport is not None and not self.transport.is_closing():
            self._writer.write(_TIMED_OUT)
        super()._timeout_cb()  # type: ignore[no-untyped-call]  # unannotated in aiosmtpd

    def shut_down(self) -> None:
        """Tell the client we are going away (421) and close the connection."""
        if self.transport is not None:
            self._writer.write(_SHUTTING_DOWN)
            self.transport.close()

    def abort(self) -> None:
        """Drop the connection without a goodbye."""
        if self.transport is not None:
            self._writer.transport.abort()

    @contextmanager
    def _replies_verbatim(self) -> Iterator[None]:
        # RFC 2034 section 3: the greeting and HELO/EHLO replies carry no codes.
        self._verbatim = True
        try:
            yield
        finally:
            self._verbatim = False

    async def push(self, status: str | bytes) -> None:
        if isinstance(status, bytes):  # only SASL 334 challenges are pushed as bytes
            await super().push(status)
            return
        if self._in_rcpt and status == _MALFORMED_ADDRESS:
            # A recipient path the parser cannot read is a syntax error (501),
            # as is one it reads but that is no address (the handler's check).
            status = REPLY_BAD_RCPT_SYNTAX
        if self._greeted and not self._verbatim:
            if "\r\n" in status:
                status = "\r\n".join(enhance_reply(line) for line in status.split("\r\n"))
            else:
                status = enhance_reply(status)
        self._greeted = True
        await super().push(status)

    def _getaddr(self, arg: str) -> tuple[str | None, str | None]:
        """aiosmtpd's path parser, with the common ``<local@domain>`` read directly."""
        plain = _PLAIN_PATH.match(arg)
        rest = arg[plain.end() :].lstrip(" \t") if plain is not None else ""
        if plain is None or rest.startswith("("):  # comments: the parser's business
            return super()._getaddr(arg)
        if self.local_part_limit and len(plain.group(1)) > self.local_part_limit:
            return None, None
        return f"{plain.group(1)}@{plain.group(2)}", rest

    @syntax("RCPT TO: <address>", extended=" [SP <mail-parameters>]")
    async def smtp_RCPT(  # noqa: N802 - aiosmtpd dispatches commands by this name
        self, arg: str | None
    ) -> None:
        """aiosmtpd's RCPT, with its malformed-path reply turned into our 501 (see push)."""
        self._in_rcpt = True
        try:
            await super().smtp_RCPT(arg)
        finally:
            self._in_rcpt = False

    @syntax("DATA")
    async def smtp_DATA(  # noqa: N802 - aiosmtpd dispatches commands by this name
        self, arg: str
    ) -> None:
        """aiosmtpd's DATA with the content read in large pieces (``data.py``)."""
        if self._decode_data:  # never set by SmtpServer; aiosmtpd's own does it
            await super().smtp_DATA(arg)
            return
        if await self.check_helo_needed() or await self.check_auth_needed("DATA"):
            return
        assert self.envelope is not None  # noqa: S101 - set from connection_made on
        if not self.envelope.rcpt_tos:
            await self.push("503 Error: need RCPT command")
            return
        if arg:
            await self.push("501 Syntax: DATA")
            return
        await self.push("354 End data with <CR><LF>.<CR><LF>")
        try:
            content = await read_data(self._reader, max_size=self.data_size_limit or 0)
        except asyncio.CancelledError:
            log.info("connection lost during DATA")
            self._writer.close()
            raise
        if isinstance(content, str):  # a refusal, once the whole content went by
            await self.push(content)
            self._end_transaction()
            return
        self.envelope.content = self.envelope.original_content = content
        status = await self._call_handler_hook("DATA")
        self._end_transaction()
        await self.push("250 OK" if status is MISSING else status)

    def _end_transaction(self) -> None:
        self._set_post_data_state()  # type: ignore[no-untyped-call]  # unannotated in aiosmtpd

    @syntax("HELO hostname")
    async def smtp_HELO(  # noqa: N802 - aiosmtpd dispatches commands by this name
        self, hostname: str
    ) -> None:
        with self._replies_verbatim():
            await super().smtp_HELO(hostname)

    @syntax("EHLO hostname")
    async def smtp_EHLO(  # noqa: N802 - aiosmtpd dispatches commands by this name
        self, hostname: str
    ) -> None:
        with self._replies_verbatim():
            await super().smtp_EHLO(hostname)


class _MailcueLMTP(LMTP, _MailcueSMTP):
    """LMTP (RFC 2033). LMTP comes first in the MRO so its LHLO reaches our EHLO."""

    def __init__(
        self,
        handler: SmtpHandler,
        *,
        connections: set[_MailcueSMTP],
        ticket: Ticket | None = None,
        **options: Any,
    ) -> None:
        super().__init__(handler, connections=connections, ticket=ticket, **options)
        self._replies_owed = 0

    async def push(self, status: str | bytes) -> None:
        if isinstance(status, str):
            status = self._one_per_recipient(status)
        await super().push(status)

    def _one_per_recipient(self, status: str) -> str:
        # RFC 2033 section 4.2: after the final dot, one reply per accepted
        # recipient. The handler sends one line each; the DATA refusal (552
        # too big) and handle_exception's 451 are single lines, repeated here
        # so the client is not left waiting.
        if status.startswith("354"):
            self._replies_owed = len(self.envelope.rcpt_tos) if self.envelope else 0
            return status
        owed, self._replies_owed = self._replies_owed, 0
        if owed > 1 and "\r\n" not in status:
            return "\r\n".join([status] * owed)
        return status


class SmtpServer:
    """Every SMTP-family listener of one process, sharing one sink.

    Args:
        sink: Policy, credentials and storage.
        listeners: What to listen on; ports are reported by :meth:`start`.
        hostname: Our name in the greeting, EHLO and ``Received`` (no DNS lookup).
        tls_context: Server-side context for STARTTLS and implicit-TLS listeners.
        max_message_size: The SIZE limit (RFC 1870), in bytes, or a function giving
            the limit in force (read for each new connection).
        idle_timeout: Seconds a client may stay silent before it gets 421 and is dropped,
            from the first byte on (greeting, EHLO, STARTTLS and AUTH included).
        caps: Connections each listener holds at most, per client and in all; a
            connection over them gets ``421 4.7.0 Too many connections``.
        postmaster_domain: Where ``RCPT TO:<postmaster>``, which has no domain, goes
            (RFC 5321 section 4.5.1); default: ``hostname``.

    Raises:
        ConfigError: A TLS listener without ``tls_context``, or no hostname.
    """

    def __init__(
        self,
        sink: Sink,
        listeners: Sequence[Listener],
        *,
        hostname: str,
        tls_context: ssl.SSLContext | None = None,
        max_message_size: Limit = DEFAULT_MAX_MESSAGE_SIZE,
        idle_timeout: float = DEFAULT_IDLE_TIMEOUT,
        postmaster_domain: str = "",
        caps: ConnectionCaps | None = None,
    ) -> None:
        if not hostname:
            raise ConfigError("the SMTP server needs a hostname")
        if tls_context is None and any(item.tls is not TlsMode.NONE for item in listeners):
            raise ConfigError("a TLS listener needs a certificate (tls_context)")
        self._sink = sink
        self._listeners = tuple(listeners)
        self._hostname = hostname
        self._postmaster_domain = postmaster_domain or hostname
        self._tls_context = tls_context
        self._max_message_size = max_message_size
        self._idle_timeout = idle_timeout
        self._caps = caps or ConnectionCaps()
        self._gates: list[Gate] = []
        self._servers: list[asyncio.Server] = []
        self._handlers: list[SmtpHandler] = []
        self._connections: set[_MailcueSMTP] = set()

    @property
    def ports(self) -> tuple[int, ...]:
        """The bound ports, in the order of ``listeners``."""
        return tuple(int(server.sockets[0].getsockname()[1]) for server in self._servers)

    async def start(self) -> tuple[int, ...]:
        """Bind every listener on the running loop.

        Returns:
            The bound ports, in the order of ``listeners``.
        """
        _quiet_login_data_warning()
        loop = asyncio.get_running_loop()
        try:
            for listener in self._listeners:
                handler = SmtpHandler(
                    self._sink,
                    kind=listener.kind,
                    implicit_tls=listener.tls is TlsMode.IMPLICIT,
                    require_auth=listener.require_auth,
                    postmaster_domain=self._postmaster_domain,
                )
                gate = Gate(
                    self._caps.limiter(str(listener.kind)),
                    refusal=_TOO_MANY,
                    tls=self._tls_context if listener.tls is TlsMode.IMPLICIT else None,
                    handshake_timeout=min(self._idle_timeout, _HANDSHAKE_TIMEOUT),
                )
                self._gates.append(gate)
                try:
                    server = await gate.start_server(
                        self._factory(listener, handler, loop), listener.host, listener.port
                    )
                except OSError as exc:
                    raise ListenerUnavailable(
                        str(listener.kind), listener.host, listener.port, exc
                    ) from None
                self._handlers.append(handler)
                self._servers.append(server)
        except BaseException:
            await self.close(grace=0)
            raise
        log.debug("SMTP listening: %s", self._describe())
        return self.ports

    async def close(self, *, grace: float = 30.0) -> None:
        """Stop accepting, let running deliveries answer, then close connections.

        Args:
            grace: Seconds to wait for in-progress deliveries before the
                remaining connections get ``421`` and are closed.
        """
        for server in self._servers:
            server.close()
        for gate in self._gates:
            gate.close()
        try:
            async with asyncio.timeout(grace):
                await asyncio.gather(*(handler.drain() for handler in self._handlers))
        except TimeoutError:
            log.warning("SMTP shutdown: deliveries still running after %ss", grace)
        connections = list(self._connections)
        for connection in connections:
            connection.shut_down()
        if connections:
            _, stuck = await asyncio.wait([c.lost for c in connections], timeout=_CLOSE_TIMEOUT)
            for connection in connections:
                if not connection.lost.done():
                    connection.abort()
            log.debug("SMTP shutdown: %d connection(s) aborted", len(stuck))
        for server in self._servers:
            await server.wait_closed()
        self._servers.clear()
        self._handlers.clear()
        self._gates.clear()

    def _factory(
        self, listener: Listener, handler: SmtpHandler, loop: asyncio.AbstractEventLoop
    ) -> Callable[[Ticket], _MailcueSMTP]:
        lmtp = listener.kind is ListenerKind.LMTP
        protocol = _MailcueLMTP if lmtp else _MailcueSMTP
        starttls = self._tls_context if listener.tls is TlsMode.STARTTLS else None
        # aiosmtpd only counts STARTTLS as encryption, so an implicit-TLS
        # listener must lift auth_require_tls to offer AUTH (STACK-NOTES).
        plaintext_ok = listener.tls is TlsMode.IMPLICIT or listener.allow_plaintext_auth

        def make(ticket: Ticket) -> _MailcueSMTP:
            return protocol(
                handler,
                connections=self._connections,
                ticket=ticket,
                hostname=self._hostname,
                ident="LMTP MailCue" if lmtp else "ESMTP MailCue",
                tls_context=starttls,
                data_size_limit=current(self._max_message_size),
                enable_SMTPUTF8=True,
                decode_data=False,
                auth_require_tls=not plaintext_ok,
                auth_exclude_mechanism=() if handler.offers_auth else ("PLAIN", "LOGIN"),
                timeout=self._idle_timeout,
                loop=loop,
            )

        return make

    def _describe(self) -> str:
        return ", ".join(
            f"{item.kind}({item.tls})@{item.host}:{port}"
            for item, port in zip(self._listeners, self.ports, strict=True)
        )
