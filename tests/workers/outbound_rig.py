"""The outside world of outbound delivery tests, all real and on loopback.

- :func:`remote_smtp`: an aiosmtpd server on a free port playing a remote MX
  or a relay, scripted reply by reply, recording what it was given.
- :func:`policy_server`: an HTTPS server answering every request with one
  MTA-STS policy text.
"""

from __future__ import annotations

import asyncio
import re
import ssl
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from conftest import node_settings
from mailcue_server.events.bus import EventBus
from mailcue_server.workers.outbound import OutboundWorker


@dataclass
class Delivery:
    """One message a remote server accepted."""

    mail_from: str
    rcpt_tos: list[str]
    content: bytes
    helo: str
    tls: bool
    login: str | None


@dataclass
class Remote:
    """A scripted SMTP server: replies are consumed in order, then everything is accepted.

    Attributes:
        rcpt_replies: Per recipient, the replies its next RCPT commands get.
        data_replies: The replies the next DATA commands get.
        data_gate: When set, DATA waits for this event before answering.
        data_delay: Seconds DATA takes (to make deliveries overlap).
        offer_dsn: Advertise DSN (RFC 3461) and record its parameters in
            ``mail_params`` (one dict per MAIL) and ``rcpt_params`` (by address).
    """

    port: int = 0
    rcpt_replies: dict[str, list[str]] = field(default_factory=dict)
    data_replies: list[str] = field(default_factory=list)
    data_gate: asyncio.Event | None = None
    data_delay: float = 0.0
    offer_dsn: bool = False
    mail_params: list[dict[str, str]] = field(default_factory=list)
    rcpt_params: dict[str, dict[str, str]] = field(default_factory=dict)
    received: list[Delivery] = field(default_factory=list)
    sessions: int = 0
    mail_commands: int = 0
    data_commands: int = 0

    async def handle_EHLO(  # noqa: N802 - aiosmtpd's hook name
        self, server: SMTP, session: Session, envelope: Envelope, hostname: str, responses: Any
    ) -> Any:
        session.host_name = hostname
        if self.offer_dsn:
            return [*responses[:-1], "250-DSN", responses[-1]]
        return responses

    async def handle_MAIL(  # noqa: N802 - aiosmtpd's hook name
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: Any
    ) -> str:
        self.mail_commands += 1
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 2.1.0 OK"

    async def handle_RCPT(  # noqa: N802 - aiosmtpd's hook name
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: Any
    ) -> str:
        script = self.rcpt_replies.get(address)
        reply = script.pop(0) if script else "250 2.1.5 OK"
        if reply.startswith("2"):
            envelope.rcpt_tos.append(address)
        return reply

    async def handle_DATA(  # noqa: N802 - aiosmtpd's hook name
        self, server: SMTP, session: Session, envelope: Envelope
    ) -> str:
        self.data_commands += 1
        if self.data_gate is not None:
            await self.data_gate.wait()
        if self.data_delay:
            await asyncio.sleep(self.data_delay)
        reply = self.data_replies.pop(0) if self.data_replies else "250 2.0.0 Queued"
        if reply.startswith("2"):
            login = session.auth_data.login.decode() if session.auth_data else None
            self.received.append(
                Delivery(
                    mail_from=envelope.mail_from or "",
                    rcpt_tos=list(envelope.rcpt_tos),
                    content=bytes(envelope.original_content or b""),
                    helo=session.host_name or "",
                    tls=session.ssl is not None,
                    login=login,
                )
            )
        return reply


_DSN_PARAMETER = re.compile(r"\s+(RET|ENVID|NOTIFY|ORCPT)=(\S+)", re.IGNORECASE)
_PATH = re.compile(r"<([^>]*)>")


class _DsnRemoteSmtp(SMTP):
    """aiosmtpd refuses parameters it does not know: this one notes and drops DSN's."""

    async def smtp_MAIL(self, arg: str | None) -> None:  # noqa: N802 - aiosmtpd's name
        remote: Remote = self.event_handler
        remote.mail_params.append({k.upper(): v for k, v in _DSN_PARAMETER.findall(arg or "")})
        await super().smtp_MAIL(_DSN_PARAMETER.sub("", arg) if arg else arg)

    async def smtp_RCPT(self, arg: str | None) -> None:  # noqa: N802 - aiosmtpd's name
        remote: Remote = self.event_handler
        path = _PATH.search(arg or "")
        if path is not None:
            found = _DSN_PARAMETER.findall(arg or "")
            remote.rcpt_params[path.group(1)] = {k.upper(): v for k, v in found}
        await super().smtp_RCPT(_DSN_PARAMETER.sub("", arg) if arg else arg)


def password_authenticator(login: str, password: str) -> Any:
    """An aiosmtpd authenticator accepting exactly one login."""

    def check(
        server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
    ) -> AuthResult:
        ok = isinstance(auth_data, LoginPassword) and auth_data == (
            login.encode(),
            password.encode(),
        )
        # handled=False: aiosmtpd itself answers 235 or 535.
        return AuthResult(success=ok, handled=False, auth_data=auth_data if ok else None)

    return check


@asynccontextmanager
async def remote_smtp(
    remote: Remote | None = None,
    *,
    tls: ssl.SSLContext | None = None,
    require_tls: bool = False,
    authenticator: Any = None,
    hostname: str = "remote.test",
) -> AsyncIterator[Remote]:
    """Run ``remote`` (or a fresh one) as an SMTP server on 127.0.0.1; yields it with its port."""
    handler = remote or Remote()
    loop = asyncio.get_running_loop()

    def protocol() -> SMTP:
        handler.sessions += 1
        kind = _DsnRemoteSmtp if handler.offer_dsn else SMTP
        return kind(
            handler,
            hostname=hostname,
            tls_context=tls,
            require_starttls=require_tls,
            authenticator=authenticator,
            auth_required=authenticator is not None,
        )

    server = await loop.create_server(protocol, "127.0.0.1", 0)
    handler.port = server.sockets[0].getsockname()[1]
    try:
        yield handler
    finally:
        server.close()
        await server.wait_closed()


@asynccontextmanager
async def policy_server(text: str, tls: ssl.SSLContext) -> AsyncIterator[int]:
    """An HTTPS server on 127.0.0.1 answering every GET with ``text``; yields its port."""
    body = text.encode()

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\n"
                + f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
                + body
            )
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0, ssl=tls)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        await server.wait_closed()


def worker_factory(data_dir: Path, resolver: str, bus: EventBus) -> Callable[..., OutboundWorker]:
    """Builds delivery workers whose DNS is ``resolver``; keyword arguments are more settings."""

    def build(**overrides: Any) -> OutboundWorker:
        values: dict[str, Any] = {
            "dns_resolver": resolver,
            "outbound_timeout": 5.0,
            "outbound_poll_interval": 5.0,
            "hostname": "mail.local.test",
        }
        values.update(overrides)
        return OutboundWorker(node_settings(data_dir, **values), bus=bus)

    return build
