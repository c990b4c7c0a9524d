"""Admission at accept time for the mail listeners: caps, a refusal line, implicit TLS.

A listener started through :class:`Gate` takes each new TCP connection
first, asks its :class:`ConnectionLimiter`, and only then does the TLS
handshake (SMTPS, IMAPS, POP3S) and hands the connection to the protocol.
Counting before the handshake matters: a client that opens thousands of
sockets and never says hello would otherwise hold a descriptor each for the
whole handshake timeout without being counted.

A connection over the caps gets the protocol's refusal line and is closed.
On a TLS listener the line is said over TLS (a plain line would be noise to
the client), which costs a handshake; only :data:`REFUSALS_IN_FLIGHT` such
refusals run at once per listener, further ones are closed without a word.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from asyncio import sslproto
from collections.abc import Awaitable, Callable
from typing import cast

from mailcue_server.workers.connections import ConnectionLimiter, Ticket, client_of

__all__ = ["Gate", "ProtocolFactory", "refuse_plain", "stream_protocols"]

log = logging.getLogger(__name__)

ProtocolFactory = Callable[[Ticket], asyncio.Protocol]
"""Builds the protocol of an admitted connection; it releases the ticket in connection_lost."""

# Seconds a refused client gets to read the refusal (and to finish a TLS handshake for it).
REFUSAL_LINGER = 2.0
_REFUSAL_HANDSHAKE = 5.0


class Gate:
    """Starts one listener whose connections are counted before anything else happens.

    Args:
        limiter: The caps of this listener.
        refusal: What a client over the caps reads before the connection closes.
        tls: Server context for implicit TLS, or None for a plain listener.
        handshake_timeout: Seconds an admitted client may take for its TLS handshake.
    """

    def __init__(
        self,
        limiter: ConnectionLimiter,
        *,
        refusal: bytes,
        tls: ssl.SSLContext | None = None,
        handshake_timeout: float = 60.0,
    ) -> None:
        self.limiter = limiter
        self.refusal = refusal
        self.tls = tls
        self.handshake_timeout = handshake_timeout
        # Raw transports whose TLS handshake is still running, for close().
        self._handshaking: set[asyncio.Transport] = set()

    async def start_server(
        self, factory: ProtocolFactory, host: str | None, port: int
    ) -> asyncio.Server:
        """Bind ``host``:``port`` on the running loop (``loop.create_server``)."""
        loop = asyncio.get_running_loop()
        return await loop.create_server(lambda: _Admission(self, factory), host, port)

    def close(self) -> None:
        """End the TLS handshakes still running (the caller closes the server)."""
        for transport in list(self._handshaking):
            transport.abort()

    def admit(self, transport: asyncio.Transport, factory: ProtocolFactory) -> None:
        """Serve a just-accepted connection with ``factory``'s protocol, or refuse it."""
        ticket = self.limiter.admit(client_of(transport.get_extra_info("peername")))
        if ticket is None:
            self._refuse(transport)
        elif self.tls is None:
            protocol = factory(ticket)
            transport.set_protocol(protocol)
            protocol.connection_made(transport)
        else:
            admitted = _Admitted(ticket, factory)
            self._wrap(transport, self.tls, admitted, ticket, self.handshake_timeout)

    def _refuse(self, transport: asyncio.Transport) -> None:
        slot = self.limiter.refusal()
        if self.tls is None:
            refuse_plain(transport, self.refusal, slot)
        elif slot is None:
            transport.abort()
        else:
            self._wrap(
                transport,
                self.tls,
                _RefusedOverTls(self.refusal, slot),
                slot,
                _REFUSAL_HANDSHAKE,
                shutdown_seconds=REFUSAL_LINGER,
            )

    def _wrap(
        self,
        transport: asyncio.Transport,
        context: ssl.SSLContext,
        protocol: asyncio.Protocol,
        ticket: Ticket,
        handshake_seconds: float,
        shutdown_seconds: float | None = None,
    ) -> None:
        """Put a TLS layer between ``transport`` and ``protocol`` before any byte is read.

        ``loop.start_tls`` cannot be used here: it is a coroutine, so it runs
        a loop iteration after the accept, and uvloop starts reading a new
        connection right after ``connection_made`` even when that paused it.
        A ClientHello sent with the connect (as every client does) would be
        read in between and lost, and the handshake would hang. Installing
        the TLS protocol from ``connection_made`` leaves no such gap.
        ``protocol`` sees ``connection_made`` once the handshake succeeded;
        when it fails (or times out) the ticket is given back here.
        """
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[None] = loop.create_future()
        layer = sslproto.SSLProtocol(
            loop,
            protocol,
            context,
            waiter,
            server_side=True,
            # typeshed says int; asyncio takes any number of seconds.
            ssl_handshake_timeout=handshake_seconds,  # type: ignore[arg-type]
            ssl_shutdown_timeout=shutdown_seconds,
        )
        self._handshaking.add(transport)

        def handshake_done(done: asyncio.Future[None]) -> None:
            self._handshaking.discard(transport)
            failure = None if done.cancelled() else done.exception()
            if done.cancelled() or failure is not None:
                log.debug("%s: TLS handshake failed: %r", self.limiter.name, failure)
                transport.abort()
                ticket.release()

        waiter.add_done_callback(handshake_done)
        transport.set_protocol(layer)
        layer.connection_made(transport)


def stream_protocols(
    serve: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]], *, limit: int
) -> ProtocolFactory:
    """What ``asyncio.start_server(serve, limit=limit)`` builds per connection, for a gate."""

    def make(ticket: Ticket) -> asyncio.Protocol:
        return _CountedStreamProtocol(asyncio.StreamReader(limit=limit), serve, ticket)

    return make


class _CountedStreamProtocol(asyncio.StreamReaderProtocol):
    """asyncio's stream protocol, holding the connection's ticket until the connection ends."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        serve: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]],
        ticket: Ticket,
    ) -> None:
        super().__init__(reader, serve)
        self._ticket = ticket

    def connection_lost(self, exc: Exception | None) -> None:
        self._ticket.release()
        super().connection_lost(exc)


class _Admission(asyncio.Protocol):
    """The first protocol of every accepted connection: counts it, then steps aside."""

    def __init__(self, gate: Gate, factory: ProtocolFactory) -> None:
        self._gate = gate
        self._factory = factory

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._gate.admit(cast(asyncio.Transport, transport), self._factory)


class _Admitted(asyncio.Protocol):
    """The application side of an admitted TLS connection until its handshake is done.

    At the end of the handshake the TLS layer calls :meth:`connection_made`
    with the secure transport, which is handed at once to the listener's
    protocol; no application data can arrive before that.
    """

    def __init__(self, ticket: Ticket, factory: ProtocolFactory) -> None:
        self._ticket = ticket
        self._factory = factory

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        protocol = self._factory(self._ticket)
        transport.set_protocol(protocol)
        protocol.connection_made(transport)


class _RefusedOverTls(asyncio.Protocol):
    """Says the refusal over TLS and closes; the TLS shutdown is bounded by the layer."""

    def __init__(self, message: bytes, slot: Ticket) -> None:
        self._message = message
        self._slot = slot

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        stream = cast(asyncio.Transport, transport)
        stream.write(self._message)
        stream.close()

    def data_received(self, data: bytes) -> None:
        pass  # read and dropped: the client is being refused

    def connection_lost(self, exc: Exception | None) -> None:
        self._slot.release()


def refuse_plain(transport: asyncio.Transport, message: bytes, slot: Ticket | None) -> None:
    """Write ``message`` and hang up, reading for a moment what the client still sends.

    Closing a socket with unread input makes the kernel answer with a reset,
    which can discard the refusal before the client read it (RFC 9112
    section 9.6); so with a ``slot`` the connection stops sending, drops what
    arrives and closes at the client's end of stream or after
    :data:`REFUSAL_LINGER` seconds. Without one it closes at once.
    """
    refusal = _Refusal(message, slot)
    transport.set_protocol(refusal)
    refusal.connection_made(transport)


class _Refusal(asyncio.Protocol):
    def __init__(self, message: bytes, slot: Ticket | None) -> None:
        self._message = message
        self._slot = slot
        self._timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        stream = cast(asyncio.Transport, transport)
        stream.write(self._message)
        if self._slot is None or not stream.can_write_eof():
            stream.close()
            return
        stream.write_eof()
        self._timer = asyncio.get_running_loop().call_later(REFUSAL_LINGER, stream.abort)

    def data_received(self, data: bytes) -> None:
        pass  # read and dropped: the client is being refused

    def eof_received(self) -> bool | None:
        return False  # close now

    def connection_lost(self, exc: Exception | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
        if self._slot is not None:
            self._slot.release()
