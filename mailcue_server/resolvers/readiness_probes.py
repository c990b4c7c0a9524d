"""What this node's own mail listeners tell a stranger: probes for the production checklist.

Each probe connects to one of our listeners over loopback as an anonymous
client would and reads what it offers, changing nothing:

- SMTP (the inbound port): ``MAIL FROM:<>`` and ``RCPT TO`` an address of a
  domain that cannot be ours (``.invalid``, RFC 2606), then ``QUIT`` before
  any DATA. An open relay (or test mode's catch-all) says 250.
- IMAP and POP3 (the STARTTLS ports): the capabilities before TLS. A server
  that requires TLS for passwords advertises ``LOGINDISABLED`` (RFC 3501
  section 6.2.3) and offers neither ``USER`` nor ``SASL`` in ``CAPA``
  (RFC 2595 section 4).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

PROBE_TIMEOUT = 3.0  # seconds for a whole probe; our own listener on loopback answers at once
RELAY_PROBE_RECIPIENT = "relay-check@mailcue-readiness.invalid"
_MAX_LINES = 100  # a capability list or reply longer than this is not one of ours


class ProbeError(Exception):
    """The listener could not be reached or answered something unexpected."""


@dataclass(frozen=True)
class Answer:
    """What a probe found: the verdict and the reply that shows it."""

    refused: bool  # relaying refused / plaintext login refused
    evidence: str


@asynccontextmanager
async def _connection(
    host: str, port: int
) -> AsyncIterator[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
    try:
        reader, writer = await asyncio.open_connection(host, port)
    except OSError as exc:
        raise ProbeError(f"cannot connect to {host}:{port}: {exc.strerror or exc}") from None
    try:
        yield reader, writer
    finally:
        writer.close()


async def _line(reader: asyncio.StreamReader) -> str:
    raw = await reader.readline()
    if not raw:
        raise ProbeError("the connection closed")
    return raw.decode("utf-8", "replace").rstrip("\r\n")


async def _smtp_reply(reader: asyncio.StreamReader) -> tuple[int, str]:
    """One (possibly multi-line) SMTP reply: its code and its last line."""
    for _ in range(_MAX_LINES):
        line = await _line(reader)
        if len(line) < 3 or not line[:3].isdecimal():
            raise ProbeError(f"not an SMTP reply: {line[:80]!r}")
        if line[3:4] != "-":
            return int(line[:3]), line
    raise ProbeError("an endless SMTP reply")


async def smtp_relay(host: str, port: int, helo: str) -> Answer:
    """Whether the inbound SMTP port refuses a recipient of a domain that is not ours.

    Raises:
        ProbeError: No SMTP session, or a refused greeting or MAIL.
    """
    async with asyncio.timeout(PROBE_TIMEOUT), _connection(host, port) as (reader, writer):
        code, line = await _smtp_reply(reader)
        if code != 220:
            raise ProbeError(f"greeting: {line}")
        for command in (f"EHLO {helo}", "MAIL FROM:<>"):
            writer.write(f"{command}\r\n".encode())
            code, line = await _smtp_reply(reader)
            if code != 250:
                raise ProbeError(f"{command.split()[0]}: {line}")
        writer.write(f"RCPT TO:<{RELAY_PROBE_RECIPIENT}>\r\n".encode())
        code, line = await _smtp_reply(reader)
        writer.write(b"QUIT\r\n")  # before DATA: nothing is ever sent
        return Answer(refused=code >= 500, evidence=line)


async def imap_plaintext_login(host: str, port: int) -> Answer:
    """Whether the IMAP STARTTLS port disables LOGIN until TLS.

    Raises:
        ProbeError: No IMAP greeting or capability list.
    """
    async with asyncio.timeout(PROBE_TIMEOUT), _connection(host, port) as (reader, writer):
        greeting = await _line(reader)
        if not greeting.startswith("* OK"):
            raise ProbeError(f"greeting: {greeting[:80]}")
        writer.write(b"p1 CAPABILITY\r\n")
        capabilities: list[str] = []
        for _ in range(_MAX_LINES):
            line = await _line(reader)
            if line.upper().startswith("* CAPABILITY "):
                capabilities += line.split()[2:]
            elif line.startswith("p1 "):
                break
        else:
            raise ProbeError("no end to the CAPABILITY answer")
        writer.write(b"p2 LOGOUT\r\n")
        upper = {capability.upper() for capability in capabilities}
        return Answer(refused="LOGINDISABLED" in upper, evidence=" ".join(capabilities))


async def pop3_plaintext_login(host: str, port: int) -> Answer:
    """Whether the POP3 STLS port offers no password login until TLS.

    Raises:
        ProbeError: No POP3 greeting or capability list.
    """
    async with asyncio.timeout(PROBE_TIMEOUT), _connection(host, port) as (reader, writer):
        greeting = await _line(reader)
        if not greeting.startswith("+OK"):
            raise ProbeError(f"greeting: {greeting[:80]}")
        writer.write(b"CAPA\r\n")
        if not (await _line(reader)).startswith("+OK"):
            raise ProbeError("CAPA was refused")
        capabilities: list[str] = []
        for _ in range(_MAX_LINES):
            line = await _line(reader)
            if line == ".":
                break
            capabilities.append(line)
        else:
            raise ProbeError("no end to the CAPA answer")
        writer.write(b"QUIT\r\n")
        offered = {capability.split()[0].upper() for capability in capabilities if capability}
        return Answer(refused=not offered & {"USER", "SASL"}, evidence=", ".join(capabilities))
