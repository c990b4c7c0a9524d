"""One SMTP session that hands a message to one server (an MX or the relay), with aiosmtplib.

The session turns every reply into per-recipient outcomes (RFC 5321
section 4.2.1: 2xx delivered, 4xx try again later, 5xx failed for good).
When the server cannot take the message at all (no connection, a refusing
greeting, TLS that a policy requires but does not work) it raises
:class:`TryElsewhere`, so the caller can try the domain's next MX.
"""

from __future__ import annotations

import contextlib
import re
import ssl
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import Enum

import aiosmtplib

from mailcue_server.mail.dsn_params import DsnRequest, encode_xtext
from mailcue_server.store.outbound import Outcome
from mailcue_server.store.outbound_models import RecipientState

_ENHANCED = re.compile(r"^([245])\.(\d{1,3})\.(\d{1,3})(?=\s|$)")


class TlsMode(Enum):
    """How a session protects itself."""

    OPPORTUNISTIC = "opportunistic"  # STARTTLS when offered, certificate unchecked (RFC 7435)
    REQUIRED = "required"  # STARTTLS with a certificate valid for the server's name
    IMPLICIT = "implicit"  # TLS from the first byte, certificate verified (relay on 465)
    NONE = "none"  # plaintext (a relay configured so)


@dataclass(frozen=True)
class Server:
    """Where to connect (``address``: an IP or host name) and who it should be (``name``)."""

    address: str
    port: int
    name: str


@dataclass(frozen=True)
class Envelope:
    """The message and envelope of one session; ``recipients`` are (queued, wire) address pairs.

    ``dsn`` holds the sender's RFC 3461 parameters, passed on to a server that
    offers DSN (section 6.2), so it reports as the sender asked.
    """

    mail_from: str
    recipients: tuple[tuple[str, str], ...]
    raw: bytes
    dsn: DsnRequest = field(default_factory=DsnRequest)


@dataclass(frozen=True)
class SessionConfig:
    helo: str
    timeout: float
    verified: ssl.SSLContext  # trusts the system CAs plus MAILCUE_OUTBOUND_CA_FILE
    credentials: tuple[str, str] | None = None


class TryElsewhere(Exception):
    """This server could not take the message; another MX (or a later attempt) may."""

    def __init__(self, text: str, *, code: int = 0, status: str = "4.4.1") -> None:
        super().__init__(text)
        self.text = text
        self.code = code
        self.status = status


def enhanced_status(code: int, text: str) -> str:
    """The RFC 3463 status a reply carries, or the generic one of its class (``5.0.0``)."""
    found = _ENHANCED.match(text.strip())
    if found and found.group(1) == str(code)[:1]:
        return found.group(0)
    return f"{code // 100}.0.0" if code >= 400 else "4.0.0"


def reply_outcome(address: str, code: int, text: str, host: str) -> Outcome:
    """The outcome an SMTP reply means for a recipient."""
    if 200 <= code < 300:
        state = RecipientState.DELIVERED
    elif 500 <= code < 600:
        state = RecipientState.FAILED
    else:
        state = RecipientState.PENDING
    reply = " ".join(f"{code} {text}".split())
    return Outcome(address, state, code, enhanced_status(code, text), reply, host)


def deferred(
    recipients: Sequence[str], text: str, *, code: int = 0, status: str = "4.4.1", host: str = ""
) -> list[Outcome]:
    """Every recipient deferred for one reason (no connection, DNS trouble, TLS policy...)."""
    return [
        Outcome(address, RecipientState.PENDING, code, status, text, host)
        for address in recipients
    ]


def opportunistic_context() -> ssl.SSLContext:
    """Encrypt without checking who answers: better than plaintext, no worse (RFC 7435)."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


async def transfer(
    server: Server, envelope: Envelope, config: SessionConfig, tls: TlsMode
) -> list[Outcome]:
    """Deliver ``envelope`` through ``server``; one outcome per recipient.

    Raises:
        TryElsewhere: No session was possible (connection, greeting, required TLS).
    """
    try:
        return await _session(server, envelope, config, tls)
    except _TlsBroke as broke:
        # RFC 7435 section 6: opportunistic TLS that fails falls back to plaintext.
        if tls is not TlsMode.OPPORTUNISTIC:
            raise TryElsewhere(str(broke), status="4.7.5") from None
        return await _session(server, envelope, config, TlsMode.NONE)


class _TlsBroke(Exception):
    """The TLS handshake failed; the connection is gone."""


async def _session(
    server: Server, envelope: Envelope, config: SessionConfig, tls: TlsMode
) -> list[Outcome]:
    smtp = aiosmtplib.SMTP(
        hostname=server.address,
        port=server.port,
        local_hostname=config.helo,
        timeout=config.timeout,
        use_tls=tls is TlsMode.IMPLICIT,
        start_tls=False,
        tls_context=config.verified if tls is TlsMode.IMPLICIT else None,
    )
    try:
        await _open(smtp, server, config, tls)
        outcomes = await _send(smtp, server, envelope, config)
    except BaseException:
        smtp.close()  # failed or cancelled (a stopping worker): no polite QUIT to wait for
        raise
    if smtp.is_connected:
        with contextlib.suppress(aiosmtplib.SMTPException, OSError):
            await smtp.quit()
    smtp.close()
    return outcomes


async def _open(
    smtp: aiosmtplib.SMTP, server: Server, config: SessionConfig, tls: TlsMode
) -> None:
    """Connect, greet, secure: any failure here means "not this server"."""
    where = f"{server.name} ({server.address}:{server.port})"
    try:
        await smtp.connect()
        await _greet(smtp)
    except aiosmtplib.SMTPResponseException as exc:
        raise TryElsewhere(
            f"{where} refused the session: {exc.code} {exc.message}",
            code=exc.code,
            status=enhanced_status(exc.code, exc.message),
        ) from None
    except (aiosmtplib.SMTPException, OSError) as exc:
        raise TryElsewhere(f"cannot talk to {where}: {exc}") from None
    if tls in (TlsMode.NONE, TlsMode.IMPLICIT):
        return
    if not smtp.supports_extension("starttls"):
        if tls is TlsMode.REQUIRED:
            raise TryElsewhere(
                f"{where} does not offer STARTTLS, which is required", status="4.7.5"
            )
        return
    context = config.verified if tls is TlsMode.REQUIRED else opportunistic_context()
    try:
        await smtp.starttls(server_hostname=server.name, tls_context=context)
    except aiosmtplib.SMTPResponseException as exc:
        if tls is TlsMode.REQUIRED:
            raise TryElsewhere(
                f"{where} refused STARTTLS: {exc.code} {exc.message}", status="4.7.5"
            ) from None
        return  # RFC 3207 section 4: a refused STARTTLS leaves the session as it was
    except (ssl.SSLError, aiosmtplib.SMTPException, OSError) as exc:
        raise _TlsBroke(f"TLS with {where} failed: {exc}") from None
    try:
        await _greet(smtp)  # RFC 3207 section 4.2: forget what was said in plaintext
    except (aiosmtplib.SMTPException, OSError) as exc:
        raise TryElsewhere(f"{where} failed after STARTTLS: {exc}") from None


async def _greet(smtp: aiosmtplib.SMTP) -> None:
    try:
        await smtp.ehlo()
    except aiosmtplib.SMTPHeloError:
        await smtp.helo()  # RFC 5321 section 3.2: a server without ESMTP


async def _send(
    smtp: aiosmtplib.SMTP, server: Server, envelope: Envelope, config: SessionConfig
) -> list[Outcome]:
    """AUTH (relay), MAIL, RCPT each, DATA; replies become outcomes."""
    addresses = [queued for queued, _ in envelope.recipients]
    host = server.name
    outcomes: dict[str, Outcome] = {}
    try:
        if config.credentials is not None:
            await smtp.login(*config.credentials)
        utf8 = not _ascii(envelope.mail_from, *(wire for _, wire in envelope.recipients))
        if utf8 and not smtp.supports_extension("smtputf8"):
            text = f"{host} does not accept internationalised addresses (no SMTPUTF8)"
            return [Outcome(a, RecipientState.FAILED, 0, "5.6.7", text, host) for a in addresses]
        encoding = "utf-8" if utf8 else "ascii"
        try:
            await smtp.mail(
                envelope.mail_from, options=_mail_options(smtp, envelope, utf8), encoding=encoding
            )
        except aiosmtplib.SMTPResponseException as exc:
            return [reply_outcome(a, exc.code, exc.message, host) for a in addresses]
        accepted: list[str] = []
        for queued, wire in envelope.recipients:
            try:
                options = _rcpt_options(smtp, envelope, queued)
                await smtp.rcpt(wire, options=options, encoding=encoding)
                accepted.append(queued)
            except aiosmtplib.SMTPResponseException as exc:
                outcomes[queued] = reply_outcome(queued, exc.code, exc.message, host)
        if accepted:
            try:
                reply = await smtp.data(envelope.raw)
                code, text = reply.code, reply.message
            except aiosmtplib.SMTPResponseException as exc:
                code, text = exc.code, exc.message
            for queued in accepted:
                outcomes[queued] = reply_outcome(queued, code, text, host)
    except aiosmtplib.SMTPAuthenticationError as exc:
        # A wrong relay password is the operator's to fix: keep the mail and retry.
        answer = " ".join(f"{exc.code} {exc.message}".split())
        return deferred(addresses, f"{host} refused our login: {answer}", code=exc.code, host=host)
    except (aiosmtplib.SMTPException, OSError) as exc:
        broke = deferred(addresses, f"session with {host} failed: {exc}", host=host)
        return [outcomes.get(outcome.address, outcome) for outcome in broke]
    return [outcomes[a] for a in addresses]


def _mail_options(smtp: aiosmtplib.SMTP, envelope: Envelope, utf8: bool) -> list[str]:
    options = []
    if smtp.supports_extension("size"):
        options.append(f"SIZE={len(envelope.raw)}")  # RFC 1870: refused early if too big
    if smtp.supports_extension("8bitmime") and not envelope.raw.isascii():
        options.append("BODY=8BITMIME")  # RFC 6152
    if utf8:
        options.append("SMTPUTF8")  # RFC 6531 section 3.4
    if smtp.supports_extension("dsn"):
        if envelope.dsn.ret is not None:
            options.append(f"RET={envelope.dsn.ret.value}")
        if envelope.dsn.envid:
            options.append(f"ENVID={encode_xtext(envelope.dsn.envid)}")
    return options


def _rcpt_options(smtp: aiosmtplib.SMTP, envelope: Envelope, queued: str) -> list[str]:
    """NOTIFY and ORCPT as the sender gave them, for a server that offers DSN."""
    if not smtp.supports_extension("dsn"):
        return []
    wanted = envelope.dsn.for_recipient(queued)
    options = [f"NOTIFY={','.join(wanted.notify)}"] if wanted.notify else []
    if wanted.orcpt:
        kind, _, address = wanted.orcpt.partition(";")
        options.append(f"ORCPT={kind};{encode_xtext(address)}")
    return options


def _ascii(*texts: str) -> bool:
    return all(text.isascii() for text in texts)
