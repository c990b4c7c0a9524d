"""The POP3/POP3S listener: sockets, line framing, TLS, timeouts and shutdown.

Owns everything between the network and ``Pop3Session``: it accepts
connections on the caller's event loop (``asyncio.start_server``, one task per
connection), cuts the byte stream into command lines, writes the session's
replies, upgrades the stream for STLS (RFC 2595 section 4) and enforces the
line-length limit, the idle timeouts (RFC 1939 section 3; a short one before
login), the connection caps (through ``workers/gate.py``) and a graceful
shutdown. One connection failing never touches another.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl

from mailcue_server.workers.connections import ConnectionCaps
from mailcue_server.workers.gate import Gate, stream_protocols
from mailcue_server.workers.pop3.backend import Pop3Backend
from mailcue_server.workers.pop3.session import After, Pop3Session, Reply, State

__all__ = ["Pop3Server"]

logger = logging.getLogger(__name__)

# RFC 2449 section 4 caps command lines at 255 octets; SASL responses can be longer
# (RFC 5034 section 4), so allow headroom for long user names and passwords.
DEFAULT_MAX_LINE_LENGTH = 1024
# RFC 1939 section 3: an autologout timer, if used, MUST be at least 10 minutes.
DEFAULT_IDLE_TIMEOUT = 600.0
# Before login a silent client is only holding a connection: a minute is plenty.
DEFAULT_LOGIN_TIMEOUT = 60.0
# A TLS handshake needs a few round trips, not an idle client's full allowance.
_HANDSHAKE_TIMEOUT = 60.0
_TOO_MANY = b"-ERR [SYS/TEMP] Too many connections\r\n"  # RFC 3206 response code
_TIMED_OUT = Reply(b"-ERR Autologout; idle for too long\r\n", After.CLOSE)


class _LineTooLongError(Exception):
    """A command line went over the limit; the whole line has been skipped."""


class Pop3Server:
    """A POP3 listener running on the current event loop.

    Args:
        backend: Checks credentials and hands out maildrops.
        host: Address to bind; ``""`` binds every interface.
        port: Port to bind; 0 picks a free one (``start`` returns it).
        ssl_context: Server-side context for implicit TLS (POP3S, RFC 8314 section 3.3).
        starttls_context: Server-side context offered through STLS on a plain listener.
        allow_plaintext_auth: Accept USER/PASS and AUTH PLAIN before TLS (test mode).
        idle_timeout: Seconds a logged-in client may stay silent, or stall a reply, before
            the connection is closed without entering UPDATE.
        login_timeout: The same before login (and for the TLS handshake).
        caps: Connections this listener holds at most, per client and in all; a
            connection over them reads ``-ERR [SYS/TEMP] Too many connections``.
        max_line_length: Longest command line accepted, in octets.
        max_auth_failures: Failed logins after which a connection is closed.
    """

    def __init__(
        self,
        backend: Pop3Backend,
        *,
        host: str = "127.0.0.1",
        port: int = 1110,
        ssl_context: ssl.SSLContext | None = None,
        starttls_context: ssl.SSLContext | None = None,
        allow_plaintext_auth: bool = False,
        idle_timeout: float = DEFAULT_IDLE_TIMEOUT,
        login_timeout: float = DEFAULT_LOGIN_TIMEOUT,
        max_line_length: int = DEFAULT_MAX_LINE_LENGTH,
        max_auth_failures: int = 3,
        caps: ConnectionCaps | None = None,
    ) -> None:
        self._backend = backend
        self._host = host
        self._port = port
        self._ssl_context = ssl_context
        self._starttls_context = None if ssl_context is not None else starttls_context
        self._allow_plaintext_auth = allow_plaintext_auth
        self._idle_timeout = idle_timeout
        self._login_timeout = min(login_timeout, idle_timeout)
        self._max_line_length = max_line_length
        self._max_auth_failures = max_auth_failures
        self._handshake_timeout = min(self._login_timeout, _HANDSHAKE_TIMEOUT)
        self._gate = Gate(
            (caps or ConnectionCaps()).limiter("pop3s" if ssl_context else "pop3"),
            refusal=_TOO_MANY,
            tls=ssl_context,
            handshake_timeout=self._handshake_timeout,
        )
        self._server: asyncio.Server | None = None
        self._closing = False
        self._tasks: set[asyncio.Task[None]] = set()
        self._idle: set[asyncio.Task[None]] = set()

    @property
    def port(self) -> int:
        """The bound port once started (the configured one before)."""
        return self._port

    async def start(self) -> int:
        """Bind and start accepting connections.

        Returns:
            The bound port. With port 0 and a host that resolves to several
            addresses, each socket gets its own port; this is the first one.

        Raises:
            RuntimeError: The server was already started.
            OSError: The address could not be bound.
        """
        if self._server is not None:
            raise RuntimeError("POP3 server already started")
        self._closing = False
        self._server = await self._gate.start_server(
            stream_protocols(self._serve, limit=self._max_line_length),
            self._host or None,
            self._port,
        )
        self._port = int(self._server.sockets[0].getsockname()[1])
        kind = "POP3S" if self._ssl_context else "POP3"
        logger.debug("%s listening on %s port %d", kind, self._host or "*", self._port)
        return self._port

    async def close(self, grace: float = 5.0) -> None:
        """Stop accepting, then end every session without entering UPDATE.

        Sessions waiting for a command are closed at once; a session in the middle
        of a command gets up to ``grace`` seconds to send its reply. Maildrop locks
        are released and nothing marked with DELE is deleted.
        """
        server, self._server = self._server, None
        if server is None:
            return
        self._closing = True
        server.close()
        self._gate.close()
        for task in list(self._idle):
            task.cancel()
        if self._tasks:
            _, pending = await asyncio.wait(set(self._tasks), timeout=grace)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        await server.wait_closed()
        logger.info("POP3 listener on port %d closed", self._port)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """One connection, from greeting to close: the connection boundary."""
        task = asyncio.current_task()
        if task is None:  # pragma: no cover -- start_server always runs us in a task
            raise RuntimeError("POP3 connection handler outside a task")
        peername = writer.get_extra_info("peername")
        peer = f"{peername[0]}:{peername[1]}" if peername else "-"
        session = Pop3Session(
            self._backend,
            tls_active=self._ssl_context is not None,
            tls_available=self._starttls_context is not None,
            allow_plaintext_auth=self._allow_plaintext_auth,
            max_auth_failures=self._max_auth_failures,
            peer=peer,
            client_ip=str(peername[0]) if peername else "",
        )
        self._tasks.add(task)
        clean = False
        try:
            if not self._closing:
                clean = await self._converse(session, reader, writer)
        except OSError as exc:  # resets, TLS failures, timeouts (TimeoutError is an OSError)
            logger.info("POP3 connection %s ended: %s", peer, type(exc).__name__)
        except Exception:
            logger.exception("POP3 connection %s failed", peer)
        finally:
            self._tasks.discard(task)
            try:
                await session.close()
            except Exception:
                logger.exception("POP3 connection %s: releasing the maildrop failed", peer)
            await _shut(writer, clean)

    async def _converse(
        self, session: Pop3Session, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> bool:
        """Run the command loop; True when it ended with a reply that closes (QUIT)."""
        await self._send(writer, session.greeting())
        while not self._closing:
            silence = (
                self._idle_timeout if session.state is State.TRANSACTION else self._login_timeout
            )
            try:
                line = await self._read_line(reader, silence)
            except _LineTooLongError:
                reply = session.line_too_long()
            except TimeoutError:
                reply = _TIMED_OUT
            else:
                if line is None:
                    return False
                reply = await session.handle_line(line)
            await self._send(writer, reply)
            if reply.after is After.CLOSE:
                return True
            if reply.after is After.START_TLS:
                await self._start_tls(reader, writer)
                session.tls_started()
        return False

    async def _read_line(self, reader: asyncio.StreamReader, silence: float) -> bytes | None:
        """The next line with its LF, or None at end of stream.

        Raises:
            _LineTooLongError: The line was over the limit and has been skipped whole,
                so its tail is not taken for a command.
            TimeoutError: The client stayed silent for ``silence`` seconds.
        """
        task = asyncio.current_task()
        if task is not None:
            self._idle.add(task)
        overlong = False
        try:
            async with asyncio.timeout(silence):
                while True:
                    try:
                        line = await reader.readuntil(b"\n")
                    except asyncio.IncompleteReadError:
                        return None
                    except asyncio.LimitOverrunError as exc:
                        overlong = True
                        await reader.readexactly(exc.consumed)  # already buffered
                        continue
                    if overlong:
                        raise _LineTooLongError
                    return line
        finally:
            if task is not None:
                self._idle.discard(task)

    async def _send(self, writer: asyncio.StreamWriter, reply: Reply) -> None:
        writer.write(reply.data)
        async with asyncio.timeout(self._idle_timeout):
            await writer.drain()

    async def _start_tls(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._starttls_context is None:  # pragma: no cover -- the session checks first
            raise RuntimeError("STLS without a TLS context")
        # Anything the client sent after STLS arrived in the clear; acting on it after the
        # handshake would let a man in the middle inject commands (CVE-2011-0411,
        # RFC 7817 section 3). No await lies between this and start_tls pausing reads.
        dropped = _drop_buffered(reader)
        if dropped:
            logger.warning("POP3 STLS: dropped %d octets sent before the handshake", dropped)
        async with asyncio.timeout(self._handshake_timeout):
            await writer.start_tls(self._starttls_context)


def _drop_buffered(reader: asyncio.StreamReader) -> int:
    """Discard bytes the reader holds but nobody has read yet; return how many."""
    # StreamReader offers no public way to drop its buffer without waiting for data.
    buffer = getattr(reader, "_buffer", None)
    if not isinstance(buffer, bytearray):  # pragma: no cover -- CPython internals changed
        return 0
    size = len(buffer)
    buffer.clear()
    return size


async def _shut(writer: asyncio.StreamWriter, clean: bool) -> None:
    """Close the connection: politely after QUIT, at once otherwise."""
    if clean:
        writer.close()
    else:
        writer.transport.abort()
    with contextlib.suppress(OSError, TimeoutError):
        async with asyncio.timeout(5):
            await writer.wait_closed()
