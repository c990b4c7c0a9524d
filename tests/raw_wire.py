"""A raw client connection for tests that play the attacker: exact bytes, any source address.

Every listener is reached the same way (plain or implicit TLS), so a test can
open many connections from a chosen loopback address (127.0.0.2 counts as
another client than 127.0.0.1), read exactly what the server says, and see
when the server hangs up.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time

TIMEOUT = 10.0


def trust_anything() -> ssl.SSLContext:
    """A client TLS context for our own self-signed test certificates."""
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    return context


class RawClient:
    """One TCP (or TLS) connection, read line by line."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, port: int, *, source: str = "127.0.0.1", tls: bool = False) -> RawClient:
        async with asyncio.timeout(TIMEOUT):
            reader, writer = await asyncio.open_connection(
                "127.0.0.1",
                port,
                local_addr=(source, 0),
                ssl=trust_anything() if tls else None,
                server_hostname="mailcue" if tls else None,
            )
        return cls(reader, writer)

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def line(self, timeout: float = TIMEOUT) -> bytes:
        """The next line with its line break; b"" once the server closed."""
        try:
            async with asyncio.timeout(timeout):
                return await self.reader.readline()
        except (ConnectionResetError, ssl.SSLError):
            return b""

    async def lines_until(self, last: bytes) -> list[bytes]:
        """Lines up to and including one equal to ``last``."""
        lines = [await self.line()]
        while lines[-1] not in (last, b""):
            lines.append(await self.line())
        return lines

    async def lines_until_tagged(self, tag: bytes) -> list[bytes]:
        """IMAP: lines up to and including the one starting with ``tag``."""
        lines = [await self.line()]
        while lines[-1] and not lines[-1].startswith(tag):
            lines.append(await self.line())
        return lines

    async def http_response(self) -> tuple[bytes, bytes]:
        """(status line, body) of one HTTP/1.1 response with a Content-Length."""
        status = await self.line()
        length = 0
        while (header := await self.line()) not in (b"\r\n", b""):
            name, _, value = header.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        async with asyncio.timeout(TIMEOUT):
            body = await self.reader.readexactly(length)
        return status, body

    async def closed(self, timeout: float = TIMEOUT) -> bool:
        """True once the server closed the connection (reading what it still sent)."""
        try:
            async with asyncio.timeout(timeout):
                while await self.reader.read(65536):
                    pass
        except TimeoutError:
            return False
        except (ConnectionResetError, ssl.SSLError):
            pass
        return True

    async def seconds_until_closed(self, timeout: float = TIMEOUT) -> float:
        """How long the server took to close, from now (fails the test after ``timeout``)."""
        started = time.monotonic()
        assert await self.closed(timeout), f"still open after {timeout} s"
        return time.monotonic() - started

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(OSError, ssl.SSLError):
            await self.writer.wait_closed()
