"""The IMAP/IMAPS listener: accepts connections on the app's loop and shuts down cleanly.

One :class:`ImapServer` is one listening socket: plain with STARTTLS
(RFC 3501 section 6.2.1, default port 1143) or implicit TLS (RFC 8314
section 3.3, default port 1993). Each connection runs pymap's command loop
(``connection.py``) with our state machine (``extensions.py``) and backend
(``backend.py``) in the task its stream protocol starts on the caller's loop,
so it sees the caller's database context. Connections are counted and capped
(and implicit TLS is done) by the connection gate (``workers/gate.py``). A
failing connection is logged and closed without touching the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from contextlib import AsyncExitStack
from uuid import uuid4

from proxyprotocol.sock import SocketInfo
from pymap.context import connection_exit

from mailcue_server.events.bus import EventBus
from mailcue_server.store.login_limiter import DEFAULT_MAX_ATTEMPTS, DEFAULT_WINDOW, LoginLimiter
from mailcue_server.workers.connections import ConnectionCaps
from mailcue_server.workers.gate import Gate, stream_protocols
from mailcue_server.workers.imap import names
from mailcue_server.workers.imap.config import (
    DEFAULT_MAX_MESSAGE_SIZE,
    IDLE_RECHECK_SECONDS,
    ImapConfig,
)
from mailcue_server.workers.imap.connection import HANDSHAKE_TIMEOUT, MAX_LINE, ImapConnection
from mailcue_server.workers.imap.extensions import ImapState
from mailcue_server.workers.imap.login import Login
from mailcue_server.workers.limits import Limit

__all__ = ["ImapServer"]

log = logging.getLogger(__name__)

DEFAULT_IDLE_TIMEOUT = 31 * 60.0
"""RFC 9051 section 5.4: an autologout timer after login must allow at least 30 minutes."""
DEFAULT_LOGIN_TIMEOUT = 60.0
"""Before login a silent client is only holding a connection: a minute is plenty."""
_TOO_MANY = b"* BYE Too many connections\r\n"


class ImapServer:
    """An IMAP4rev1 listener over the mail store.

    Args:
        bus: The event bus the store publishes on; IDLE wakes from it.
        host: Address to bind; ``""`` binds every interface.
        port: Port to bind; 0 picks a free one (:meth:`start` returns it).
        tls_context: Server TLS context (``TlsManager.server_context()``), or
            ``None`` for a listener without TLS.
        implicit_tls: TLS from the first byte (IMAPS); otherwise STARTTLS is
            offered when ``tls_context`` is given.
        allow_plaintext_auth: Accept LOGIN/AUTHENTICATE before TLS (test mode);
            otherwise the plain listener answers LOGINDISABLED until STARTTLS.
        hostname: The name in the greeting.
        max_message_size: The largest APPEND accepted (APPENDLIMIT, RFC 7889).
        idle_timeout: Seconds a silent client may stay connected once logged in.
        login_timeout: The same before login (and for the TLS handshake).
        caps: Connections this listener holds at most, per client and in all; a
            connection over them reads ``* BYE Too many connections``.
        idle_recheck: Seconds between folder re-reads while a client IDLEs.
        limiter: The login limiter HTTP, SMTP and POP3 share; ``None`` makes
            one for this listener alone.

    Raises:
        ValueError: ``implicit_tls`` without a ``tls_context``.
    """

    def __init__(
        self,
        *,
        bus: EventBus,
        host: str = "127.0.0.1",
        port: int = 1143,
        tls_context: ssl.SSLContext | None = None,
        implicit_tls: bool = False,
        allow_plaintext_auth: bool = False,
        hostname: str = "localhost",
        max_message_size: Limit = DEFAULT_MAX_MESSAGE_SIZE,
        idle_timeout: float = DEFAULT_IDLE_TIMEOUT,
        login_timeout: float = DEFAULT_LOGIN_TIMEOUT,
        idle_recheck: float = IDLE_RECHECK_SECONDS,
        caps: ConnectionCaps | None = None,
        limiter: LoginLimiter | None = None,
    ) -> None:
        if implicit_tls and tls_context is None:
            raise ValueError("implicit TLS needs a TLS context")
        names.install()  # before any command is parsed: pymap's own decoder can hang
        self._config = ImapConfig(
            bus=bus,
            hostname=hostname,
            ssl_context=tls_context,
            starttls=not implicit_tls,
            implicit_tls=implicit_tls,
            allow_plaintext_auth=allow_plaintext_auth,
            max_message_size=max_message_size,
            idle_recheck=idle_recheck,
        )
        self._login = Login(
            self._config, limiter or LoginLimiter(DEFAULT_MAX_ATTEMPTS, DEFAULT_WINDOW)
        )
        self._commands = self._config.commands
        self._host = host
        self._port = port
        self._tls_context = tls_context if implicit_tls else None
        self._idle_timeout = idle_timeout
        self._login_timeout = login_timeout
        self._gate = Gate(
            (caps or ConnectionCaps()).limiter("imaps" if implicit_tls else "imap"),
            refusal=_TOO_MANY,
            tls=self._tls_context,
            handshake_timeout=min(HANDSHAKE_TIMEOUT, login_timeout),
        )
        self._server: asyncio.Server | None = None
        self._closing = False
        self._connections: dict[asyncio.Task[None], ImapConnection] = {}

    @property
    def port(self) -> int:
        """The bound port once started (the configured one before)."""
        return self._port

    async def start(self) -> int:
        """Bind and start accepting connections.

        Returns:
            The bound port (the first socket's, if the host has several addresses).

        Raises:
            RuntimeError: Already started.
            OSError: The address could not be bound.
        """
        if self._server is not None:
            raise RuntimeError("IMAP server already started")
        self._closing = False
        self._server = await self._gate.start_server(
            stream_protocols(self._serve, limit=MAX_LINE), self._host or None, self._port
        )
        self._port = int(self._server.sockets[0].getsockname()[1])
        kind = "IMAPS" if self._tls_context else "IMAP"
        log.debug("%s listening on %s port %d", kind, self._host or "*", self._port)
        return self._port

    async def close(self, grace: float = 5.0) -> None:
        """Stop accepting, then end every connection with ``BYE``.

        Connections waiting for a command or IDLE-ing end at once; one in the
        middle of a command gets up to ``grace`` seconds to finish it.
        """
        server, self._server = self._server, None
        if server is None:
            return
        self._closing = True
        server.close()
        self._gate.close()
        for task, connection in list(self._connections.items()):
            if connection.waiting:
                task.cancel()
        if self._connections:
            _, pending = await asyncio.wait(set(self._connections), timeout=grace)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        await server.wait_closed()
        log.info("IMAP listener on port %d closed", self._port)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """One connection from greeting to close: the connection boundary."""
        task = asyncio.current_task()
        if task is None:  # pragma: no cover - start_server always runs us in a task
            raise RuntimeError("IMAP connection handler outside a task")
        peername = writer.get_extra_info("peername")
        peer = f"{peername[0]}:{peername[1]}" if peername else "-"
        connection = ImapConnection(
            self._commands,
            self._config,
            reader,
            writer,
            SocketInfo.get(writer, None, unique_id=uuid4().bytes),
            idle_timeout=self._idle_timeout,
            login_timeout=self._login_timeout,
            max_append=self._config.max_message_size,
        )
        self._connections[task] = connection
        try:
            if not self._closing:
                async with AsyncExitStack() as stack:
                    connection_exit.set(stack)
                    await connection.run(ImapState(self._login, self._config))
        except (OSError, EOFError) as exc:  # resets, TLS failures, timeouts
            log.info("IMAP connection %s ended: %s", peer, type(exc).__name__)
        except Exception:
            log.exception("IMAP connection %s failed", peer)
        finally:
            self._connections.pop(task, None)
            await _shut(writer, abort=self._closing)


async def _shut(writer: asyncio.StreamWriter, *, abort: bool) -> None:
    """Close politely (TLS close_notify included), or at once while the server shuts down."""
    if abort:
        writer.transport.abort()
        return
    writer.close()
    with contextlib.suppress(OSError, TimeoutError):
        async with asyncio.timeout(5):
            await writer.wait_closed()
