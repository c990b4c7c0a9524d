"""A mail exchanger for address validation tests: aiosmtpd on 127.0.0.1 that knows a few
mailboxes and answers RCPT TO like a real MX (accepts, refuses, or accepts everything for a
catch-all domain). It never takes DATA: validation probes must not send.

Pair it with ``dns_server(mx=..., hosts=...)`` and give the server
``validation_smtp_port=mx.port``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from aiosmtpd.smtp import SMTP, Envelope, Session

SLOW = "slow"
"""Recipients whose local part starts with this are answered after ``slow_seconds``."""


@dataclass
class MxHandler:
    mailboxes: frozenset[str]
    catch_all_domains: frozenset[str]
    recipients: list[str] = field(default_factory=list)
    data_commands: int = 0
    slow_seconds: float = 0.3
    in_flight: int = 0
    most_in_flight: int = 0  # the most slow RCPTs that were waiting at the same time

    async def handle_RCPT(  # noqa: N802 - aiosmtpd's hook name
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: Any
    ) -> str:
        self.recipients.append(address)
        if address.startswith(SLOW):
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
            try:
                await asyncio.sleep(self.slow_seconds)
            finally:
                self.in_flight -= 1
        if address in self.mailboxes or address.rpartition("@")[2] in self.catch_all_domains:
            envelope.rcpt_tos.append(address)
            return "250 2.1.5 OK"
        return "550 5.1.1 No such user here"

    async def handle_DATA(  # noqa: N802 - aiosmtpd's hook name
        self, server: SMTP, session: Session, envelope: Envelope
    ) -> str:
        self.data_commands += 1
        return "554 5.7.0 A validation probe must never send DATA"


@dataclass
class FakeMx:
    handler: MxHandler
    port: int


@asynccontextmanager
async def fake_mx(
    mailboxes: Iterable[str], catch_all_domains: Iterable[str] = ()
) -> AsyncIterator[FakeMx]:
    handler = MxHandler(frozenset(mailboxes), frozenset(catch_all_domains))
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: SMTP(handler, hostname="mx.test"), "127.0.0.1", 0)
    try:
        yield FakeMx(handler, server.sockets[0].getsockname()[1])
    finally:
        server.close()
        await server.wait_closed()
