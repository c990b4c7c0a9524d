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
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, cast

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
        self._handshakes: set[asyncio.Task[None]] = set()

    async def start_server(
        self, factory: ProtocolFactory, host: str | None, port: int
    ) -> asyncio.Server:
        """Bind ``host``:``port`` on the running loop (``loop.create_server``)."""
        loop = asyncio.get_running_loop()
        return await loop.create_server(lambda: _Admission(self, factory), host, port)

    def close(self) -> None:
        """End the TLS handshakes still running (the caller closes the server)."""
        for task in list(self._handshakes):
            task.cancel()

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._handshakes.add(task)
        task.add_done_callback(self._handshakes.discard)

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
            transport.pause_reading()  # the handshake task resumes it
            self._spawn(self._handshake(transport, self.tls, ticket, factory))

    def _refuse(self, transport: asyncio.Transport) -> None:
        slot = self.limiter.refusal()
        if self.tls is None:
            refuse_plain(transport, self.refusal, slot)
        elif slot is None:
            transport.abort()
        else:
            transport.pause_reading()
            self._spawn(self._refuse_over_tls(transport, self.tls, slot))

    async def _handshake(
        self,
        transport: asyncio.Transport,
        context: ssl.SSLContext,
        ticket: Ticket,
        factory: ProtocolFactory,
    ) -> None:
        waiting = _Handshaking(ticket)
        try:
            secure = await _start_tls(transport, waiting, context, self.handshake_timeout)
        except Exception as exc:  # resets, TLS errors, the handshake timeout
            log.debug("%s: TLS handshake failed: %r", self.limiter.name, exc)
            transport.abort()
            ticket.release()
            return
        except asyncio.CancelledError:
            transport.abort()
            ticket.release()
            raise
        if secure.is_closing():  # lost right after the handshake; nothing left to serve
            ticket.release()
            return
        waiting.hand_over(secure, factory(ticket))

    async def _refuse_over_tls(
        self, transport: asyncio.Transport, context: ssl.SSLContext, slot: Ticket
    ) -> None:
        waiting = _Handshaking(slot)
        try:
            secure = await _start_tls(
                transport, waiting, context, _REFUSAL_HANDSHAKE, shutdown_seconds=REFUSAL_LINGER
            )
        except Exception:
            transport.abort()
            slot.release()
            return
        except asyncio.CancelledError:
            transport.abort()
            slot.release()
            raise
        secure.write(self.refusal)
        secure.close()  # the TLS shutdown takes REFUSAL_LINGER seconds at most


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


class _Handshaking(asyncio.Protocol):
    """The application side of a connection while its TLS handshake runs.

    It keeps what the client sends right after the handshake for the real
    protocol and, when the connection ends before that protocol took over,
    gives the ticket back; after the hand-over it forwards a loss the TLS
    layer had already queued for it.
    """

    def __init__(self, ticket: Ticket) -> None:
        self._ticket = ticket
        self._early = bytearray()
        self._eof = False
        self._protocol: asyncio.Protocol | None = None

    def hand_over(self, transport: asyncio.Transport, protocol: asyncio.Protocol) -> None:
        transport.set_protocol(protocol)
        self._protocol = protocol
        protocol.connection_made(transport)
        if self._early:
            protocol.data_received(bytes(self._early))
            self._early.clear()
        if self._eof:
            protocol.eof_received()

    def data_received(self, data: bytes) -> None:
        if self._protocol is not None:
            self._protocol.data_received(data)
        else:
            self._early += data

    def eof_received(self) -> bool | None:
        if self._protocol is not None:
            return self._protocol.eof_received()
        self._eof = True
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        if self._protocol is not None:
            self._protocol.connection_lost(exc)
        else:
            self._ticket.release()


async def _start_tls(
    transport: asyncio.Transport,
    protocol: asyncio.Protocol,
    context: ssl.SSLContext,
    handshake_seconds: float,
    shutdown_seconds: float | None = None,
) -> asyncio.Transport:
    secure = await asyncio.get_running_loop().start_tls(
        transport,
        protocol,
        context,
        server_side=True,
        ssl_handshake_timeout=handshake_seconds,
        ssl_shutdown_timeout=shutdown_seconds,
    )
    if secure is None:  # pragma: no cover - start_tls returns None only for a closed transport
        raise ConnectionAbortedError("connection closed during the TLS handshake")
    return secure


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
